// What a sanitizer build (-DIM_SANITIZE=ON) writes to stderr on a finding:
// a test that sees it on a process's stderr fails. No side effects, so any
// test file can import it.
export const SANITIZER_RE =
  /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/;
