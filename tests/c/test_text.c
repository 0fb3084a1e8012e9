/* test_text.c: UTF-8 clipping and sanitizing. */
#include "test.h"
#include "text.h"

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
