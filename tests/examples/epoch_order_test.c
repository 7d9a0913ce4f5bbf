/* epoch_order_test.c: examples/epoch_order.py, the written-down algorithm,
 * gives the same epoch orders and the same ShardedByS3Key bounds as the C
 * library, for several seeds, epochs, sizes and world sizes. */
#include "tests/support/testenv.h"

#include "common/dataset/shuffle.h"
#include "common/dataset/snapshot.h"
#include "s3shard/dataset.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* run_py runs the script with args and reads up to max numbers from its output. */
static size_t run_py(const char *args, uint64_t *out, size_t max)
{
    const char *src = getenv("S3SHARD_SOURCE_DIR");
    assert_non_null(src);
    size_t cmdlen = strlen(args) + strlen(src) + 128;
    char *cmd = malloc(cmdlen);
    /* the system python: a version-manager shim can take seconds per start */
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, cmdlen, "%s %s/examples/epoch_order.py %s", py, src, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = 0;
    unsigned long long v;
    while (n < max && fscanf(p, "%llu", &v) == 1)
        out[n++] = v;
    int st = pclose(p);
    if (st != 0)
        fprintf(stderr, "%s: exit status %d\n", cmd, st);
    assert_int_equal(st, 0);
    free(cmd);
    return n;
}

static void test_orders_match(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 2, 3, 10, 257, 5000};
    const uint64_t seeds[] = {0, 42, UINT64_MAX, (1ull << 63) + 5};
    const uint64_t epochs[] = {0, 1, 7, 1ull << 40};
    uint64_t *py = malloc(5000 * sizeof(*py));
    uint32_t *c = malloc(5000 * sizeof(*c));
    int cases = 0;
    for (size_t a = 0; a < sizeof(sizes) / sizeof(sizes[0]); a++)
        for (size_t b = 0; b < sizeof(seeds) / sizeof(seeds[0]); b++)
            for (size_t d = 0; d < sizeof(epochs) / sizeof(epochs[0]); d++) {
                if (sizes[a] > 300 && (b + d) % 3 != 0)
                    continue; /* keep the run short: a sample of the big ones */
                char args[256];
                snprintf(args, sizeof(args), "--n %zu --seed %" PRIu64 " --epoch %" PRIu64,
                         sizes[a], seeds[b], epochs[d]);
                size_t n = run_py(args, py, 5000);
                assert_int_equal(n, sizes[a]);
                s3s_epoch_permutation(c, sizes[a], 1, seeds[b], epochs[d]);
                for (size_t i = 0; i < n; i++) {
                    if (py[i] != c[i])
                        fprintf(stderr, "%s: position %zu: python %" PRIu64 ", C %u\n", args, i,
                                py[i], c[i]);
                    assert_true(py[i] == c[i]);
                }
                cases++;
            }
    /* no ShuffleConfig: snapshot order */
    size_t n = run_py("--n 5 --seed 9 --no-shuffle", py, 10);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(py[i], i);
    fprintf(stderr, "%d orders compared\n", cases);
    free(py);
    free(c);
}

static void test_bounds_match(void **state)
{
    (void)state;
    enum { N = 300 };
    s3s__ctr_rng r = {12345, 0};
    s3s__snap_builder b;
    s3s__sb_init(&b);
    char *weights = malloc(N * 24), *w = weights;
    for (int i = 0; i < N; i++) {
        uint64_t size = (s3s__rng_next(&r) % 1000) * (i % 17 == 0 ? 50 : 1);
        char key[16];
        snprintf(key, sizeof(key), "k%05d", i);
        assert_int_equal(s3s__sb_add(&b, key, strlen(key), size, NULL), 0);
        w += sprintf(w, "%s%" PRIu64, i ? "," : "", size);
    }
    s3s_snapshot *s = NULL;
    assert_int_equal(s3s__sb_finish(&b, S3S_SNAP_OBJECTS, "t", NULL, &s, NULL), 0);
    s3s__sb_fini(&b);
    const uint32_t worlds[] = {1, 3, 8, 17, 64, 301};
    for (size_t k = 0; k < sizeof(worlds) / sizeof(worlds[0]); k++) {
        s3s_plan_opts o;
        s3s_plan_opts_init(&o);
        o.shard_target_bytes = 0;
        o.shuffle = 1;
        o.seed = 77 + k;
        o.epoch = k;
        o.distribution = S3S_DIST_SHARDED_BY_S3_KEY;
        o.balance = S3S_BALANCE_BYTES;
        s3s_plan *p = NULL;
        assert_int_equal(s3s_plan_create(&p, s, &o, NULL), 0);
        uint64_t cb[302], pyb[302];
        assert_int_equal(s3s_plan_shares(p, worlds[k], cb, NULL), 0);
        size_t alen = strlen(weights) + 128;
        char *args = malloc(alen);
        snprintf(args, alen,
                 "--n %d --seed %" PRIu64 " --epoch %" PRIu64 " --world %u --weights %s", N, o.seed,
                 o.epoch, worlds[k], weights);
        size_t n = run_py(args, pyb, 302);
        free(args);
        assert_int_equal(n, worlds[k] + 1);
        for (size_t i = 0; i < n; i++)
            assert_true(cb[i] == pyb[i]);
        s3s_plan_destroy(p);
    }
    free(weights);
    s3s_snapshot_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders_match),
        cmocka_unit_test(test_bounds_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
