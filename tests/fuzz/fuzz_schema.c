/* fuzz_schema.c: libFuzzer target for tool-argument validation
 * (schema.h). The schemas are the real ones: tools/list from the shipped
 * tools (fuzz_stack.h builds the stack once). The first input byte picks
 * a tool; the rest is parsed as JSON (when it does not parse, it is
 * wrapped as a string) and validated against that tool's inputSchema,
 * then again nested under one of its properties, so that the property
 * rules are reached more often. A failure must carry a sentence. A string
 * is also matched against the shipped tools' patterns both ways - the
 * table walk schema.c uses for them and regexec - which must agree. */
#include <cjson/cJSON.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz_stack.h"
#include "schema.h"

static uv_loop_t fz_loop;
static im_app fz_app;
static const cJSON *fz_tools;   /* the tools/list array; owned by fz_app.tools */
static int fz_ntools;

static void fz_check(const cJSON *schema, const cJSON *v) {
    char err[256];
    err[0] = '\0';
    if (im_schema_validate(schema, v, err, sizeof err) != 0 &&
        (err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL)) {
        fprintf(stderr, "fuzz_schema: a failure without a sentence\n");
        abort();
    }
}

/* The shipped symbol and date patterns, compiled both ways. */
static const char *const fz_pat_text[] = {"^[A-Za-z][A-Za-z0-9.]{0,11}$",
                                          "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"};
#define FZ_NPAT (sizeof fz_pat_text / sizeof fz_pat_text[0])
static regex_t fz_re[FZ_NPAT];
static im_schema *fz_pat[FZ_NPAT];
static cJSON *fz_pat_doc[FZ_NPAT];   /* the compiled schemas point into these */

static void fz_patterns_agree(const cJSON *v) {
    char err[256];
    if (!cJSON_IsString(v))
        return;
    for (size_t i = 0; i < FZ_NPAT; i++) {
        int walk = im_schema_run(fz_pat[i], v, err, sizeof err) == 0;
        int re = regexec(&fz_re[i], v->valuestring, 0, NULL, 0) == 0;
        if (walk != re) {
            fprintf(stderr, "fuzz_schema: %s: the walk says %d, regexec %d\n", fz_pat_text[i],
                    walk, re);
            abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const cJSON *list;
    (void)argc;
    (void)argv;
    fz_stack_init(&fz_loop, &fz_app);
    list = im_tools_list(fz_app.tools);
    fz_tools = cJSON_IsArray(list) ? list : cJSON_GetObjectItemCaseSensitive(list, "tools");
    fz_ntools = cJSON_GetArraySize(fz_tools);
    for (size_t i = 0; i < FZ_NPAT; i++) {
        char doc[128], err[128];
        cJSON *s;
        snprintf(doc, sizeof doc, "{\"type\":\"string\",\"pattern\":\"%s\"}", fz_pat_text[i]);
        s = fz_pat_doc[i] = cJSON_Parse(doc);
        if (s == NULL || im_schema_compile(s, &fz_pat[i], err, sizeof err) != 0 ||
            !im_schema_pattern_is_fast(fz_pat[i]) ||
            regcomp(&fz_re[i], fz_pat_text[i], REG_EXTENDED | REG_NOSUB) != 0) {
            fprintf(stderr, "fuzz_schema: pattern %s\n", fz_pat_text[i]);
            abort();
        }
    }
    if (fz_ntools <= 0) {
        fprintf(stderr, "fuzz_schema: tools/list is empty\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const cJSON *tool, *schema, *props, *prop;
    cJSON *v, *wrap;
    int nprops;

    if (size < 1)
        return 0;
    tool = cJSON_GetArrayItem(fz_tools, data[0] % fz_ntools);
    schema = cJSON_GetObjectItemCaseSensitive(tool, "inputSchema");
    if (schema == NULL)
        abort();
    v = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (v == NULL) {
        char *s = malloc(size);
        if (s == NULL)
            return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        v = cJSON_CreateString(s);
        free(s);
        if (v == NULL)
            return 0;
    }
    fz_check(schema, v);
    fz_patterns_agree(v);

    /* The same value as one property of an otherwise empty object. */
    props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    nprops = cJSON_GetArraySize(props);
    wrap = cJSON_CreateObject();
    if (wrap != NULL && nprops > 0) {
        prop = cJSON_GetArrayItem(props, data[0] / fz_ntools % nprops);
        if (prop != NULL && prop->string != NULL) {
            cJSON_AddItemReferenceToObject(wrap, prop->string, v);
            fz_check(schema, wrap);
        }
    }
    cJSON_Delete(wrap);
    cJSON_Delete(v);
    return 0;
}
