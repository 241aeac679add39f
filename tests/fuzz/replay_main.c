/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Corpus replay for the fuzz harnesses of tests/fuzz/<target>/, so that
 * `make test` runs every seed and every fixed crash again without libFuzzer
 * (built with gcc and ASan+UBSan like the unit tests). It stands in for
 * libFuzzer's main: each argument is a file or a directory (read one level
 * deep, dot files skipped, in name order so runs are reproducible), and every
 * file is handed once to LLVMFuzzerTestOneInput() in a buffer of exactly its
 * size, so a read past the end is caught by ASan as it would be by libFuzzer.
 * Without arguments it replays KR_FUZZ_DIR/corpus and KR_FUZZ_DIR/crashes
 * (KR_FUZZ_DIR is set by the build), which is how scripts/run-tests.sh runs
 * it. A missing directory is skipped (crashes/ usually is), but a run that
 * replays nothing fails, so a broken path cannot pass silently. It closes
 * with cmocka's summary lines, counting the whole replay as one test (so the
 * suite's total does not grow with the corpus), which the test runner reads. A harness that finds a bug aborts the process: the runner
 * counts that as a failure, and the "replay <path>" line printed before each
 * input names the culprit.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct kr_replay {
    unsigned passed;
    unsigned failed;
    char **failures; /* paths that could not be read */
    size_t failure_count;
} kr_replay;

static void kr_replay_fail(kr_replay *r, const char *path, const char *why)
{
    fprintf(stderr, "%s: %s\n", path, why);
    r->failures = realloc(r->failures, (r->failure_count + 1) * sizeof(*r->failures));
    if (!r->failures)
        abort();
    r->failures[r->failure_count++] = strdup(path);
    r->failed++;
}

/* Whole file into a buffer of exactly its size; like libFuzzer, never a NULL pointer, even
 * for an empty file (malloc(0) under ASan is a valid pointer to no accessible byte). */
static int kr_replay_read(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno;
    uint8_t *buf = malloc(0);
    size_t n = 0;
    int e = 0;
    for (;;) {
        uint8_t chunk[65536];
        size_t got = fread(chunk, 1, sizeof(chunk), f);
        if (got > 0) {
            uint8_t *grown = realloc(buf, n + got);
            if (!grown)
                abort();
            buf = grown;
            memcpy(buf + n, chunk, got);
            n += got;
        }
        if (got < sizeof(chunk)) {
            if (ferror(f))
                e = EIO;
            break;
        }
    }
    fclose(f);
    if (e) {
        free(buf);
        return e;
    }
    *data = buf;
    *size = n;
    return 0;
}

static void kr_replay_file(kr_replay *r, const char *path)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int e = kr_replay_read(path, &data, &size);
    if (e) {
        kr_replay_fail(r, path, strerror(e));
        return;
    }
    static const uint8_t empty[1];
    printf("replay %s (%zu bytes)\n", path, size);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data ? data : empty, size);
    free(data);
    r->passed++;
}

static int kr_replay_name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void kr_replay_dir(kr_replay *r, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        kr_replay_fail(r, dir, strerror(errno));
        return;
    }
    char **names = NULL;
    size_t count = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        names = realloc(names, (count + 1) * sizeof(*names));
        if (!names)
            abort();
        names[count++] = strdup(ent->d_name);
    }
    closedir(d);
    if (count > 1)
        qsort(names, count, sizeof(*names), kr_replay_name_cmp);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path)
            abort();
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            kr_replay_file(r, path);
        free(path);
        free(names[i]);
    }
    free(names);
}

static void kr_replay_path(kr_replay *r, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("skip %s: %s\n", path, strerror(errno));
        return;
    }
    if (S_ISDIR(st.st_mode))
        kr_replay_dir(r, path);
    else
        kr_replay_file(r, path);
}

int main(int argc, char **argv)
{
    kr_replay r = {0};
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            kr_replay_path(&r, argv[i]);
    } else {
#ifdef KR_FUZZ_DIR
        kr_replay_path(&r, KR_FUZZ_DIR "/corpus");
        kr_replay_path(&r, KR_FUZZ_DIR "/crashes");
#else
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
#endif
    }
    if (r.passed == 0 && r.failed == 0)
        kr_replay_fail(&r, "(corpus)", "no input replayed");
    printf("replayed %u input(s), %u unreadable\n", r.passed, r.failed);
    printf("[==========] 1 test(s) run.\n");
    printf("[  PASSED  ] %u test(s).\n", r.failed ? 0 : 1);
    if (r.failed) {
        printf("[  FAILED  ] 1 test(s), listed below:\n");
        for (size_t i = 0; i < r.failure_count; i++)
            printf("[  FAILED  ] %s\n", r.failures[i]);
    }
    for (size_t i = 0; i < r.failure_count; i++)
        free(r.failures[i]);
    free(r.failures);
    return r.failed ? 1 : 0;
}
