/* test_text.c: UTF-8 clipping and sanitizing. */
#include "test.h"
#include "text.h"

#include <stdint.h>

TEST(copy_never_splits_a_character) {
    char out[8];
    /* "é" is two bytes: with room for 7 bytes, three fit, not three and a half. */
    ASSERT_EQ(im_text_copy(out, sizeof out, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), 6);
    ASSERT_STR_EQ(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
    ASSERT_EQ(im_text_copy(out, 4, "\xf0\x9f\x98\x80"), 0);   /* a 4-byte emoji needs 5 */
    ASSERT_STR_EQ(out, "");
    ASSERT_EQ(im_text_copy(out, sizeof out, "abc"), 3);
    ASSERT_STR_EQ(out, "abc");
}

TEST(invalid_bytes_become_question_marks) {
    char s[] = "ok\xff\xc3(\xed\xa0\x80\xc0\xaf\xe2\x82";
    ASSERT_EQ(im_text_sanitize(s), 9);
    ASSERT_STR_EQ(s, "ok?" "?(" "???????");   /* split: "??(" is a trigraph */
    char out[32];
    im_text_copy(out, sizeof out, "a\xfe" "b");
    ASSERT_STR_EQ(out, "a?b");
}

TEST(valid_text_is_untouched) {
    char s[] = "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac";
    ASSERT_EQ(im_text_sanitize(s), 0);
    ASSERT_STR_EQ(s, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac");
}

/* The word-at-a-time masks against a byte loop: "none" exactly when no byte
 * matches, and otherwise the lowest flagged byte is the first match. Words
 * are random, then each interesting byte at each of the eight places
 * around every other byte value (the borrows the masks must survive). */
static void check_word(uint64_t x) {
    static const unsigned eq[] = {'"', '\\', 0};
    unsigned char b[8];
    memcpy(b, &x, 8);
    for (int kind = 0; kind < 5; kind++) {
        uint64_t m;
        int first = -1;
        for (int i = 0; i < 8 && first < 0; i++) {
            int hit = kind < 3 ? b[i] == eq[kind] : kind == 3 ? b[i] < 0x20 : b[i] >= 0x80;
            if (hit)
                first = i;
        }
        m = kind < 3 ? im_text_eq8(x, eq[kind]) : kind == 3 ? im_text_lt8(x, 0x20) : im_text_high8(x);
        if (first < 0) {
            ASSERT_EQ(m, 0);
        } else {
            ASSERT(m != 0);
            ASSERT_EQ(im_text_first8(m), first);
        }
    }
}

TEST(word_masks_agree_with_a_byte_loop) {
    static const unsigned char special[] = {0, 1, 0x1f, 0x20, 0x21, '"', '\\', 0x7f, 0x80, 0xff};
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        check_word(r);
        check_word(r & 0x7f7f7f7f7f7f7f7full);   /* ASCII only */
    }
    for (size_t s = 0; s < sizeof special; s++)
        for (int place = 0; place < 8; place++)
            for (unsigned fill = 0; fill < 256; fill++) {
                unsigned char b[8];
                uint64_t x;
                memset(b, (int)fill, 8);
                b[place] = special[s];
                memcpy(&x, b, 8);
                check_word(x);
            }
}
