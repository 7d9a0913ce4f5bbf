/* topology_test.c: rank/world size from torch, Open MPI, PMI, Slurm and
 * SageMaker's resourceconfig.json, the order between them, and the errors. */
#include "tests/support/testenv.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>

static const char *const vars[] = {"RANK",
                                   "WORLD_SIZE",
                                   "LOCAL_RANK",
                                   "OMPI_COMM_WORLD_RANK",
                                   "OMPI_COMM_WORLD_SIZE",
                                   "OMPI_COMM_WORLD_LOCAL_RANK",
                                   "PMI_RANK",
                                   "PMI_SIZE",
                                   "MPI_LOCALRANKID",
                                   "SLURM_PROCID",
                                   "SLURM_NTASKS",
                                   "SLURM_LOCALID",
                                   "S3SHARD_RESOURCE_CONFIG",
                                   NULL};

static int clear(void **state)
{
    (void)state;
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
    return 0;
}

static void test_launchers(void **state)
{
    (void)state;
    s3s_topology t;
    s3s_errinfo e = {0};
    setenv("SLURM_PROCID", "5", 1);
    setenv("SLURM_NTASKS", "8", 1);
    setenv("SLURM_LOCALID", "1", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), 0);
    assert_string_equal(t.source, "slurm");
    assert_int_equal(t.rank, 5);
    assert_int_equal(t.world_size, 8);
    assert_int_equal(t.local_rank, 1);
    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "4", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), 0);
    assert_string_equal(t.source, "pmi");
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), 0);
    assert_string_equal(t.source, "openmpi");
    assert_int_equal(t.local_rank, 3);
    setenv("RANK", "0", 1);
    setenv("WORLD_SIZE", "16", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), 0);
    assert_string_equal(t.source, "torch");
    assert_int_equal(t.world_size, 16);
    assert_int_equal(t.local_rank, 0);
}

static void test_errors(void **state)
{
    (void)state;
    s3s_topology t;
    s3s_errinfo e = {0};
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), S3S_ENOTOPO);
    assert_non_null(strstr(e.msg, "--rank"));
    setenv("RANK", "1", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), S3S_ECONFIG);
    assert_non_null(strstr(e.msg, "RANK is set but WORLD_SIZE is not"));
    setenv("WORLD_SIZE", "x1", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), S3S_ECONFIG);
    assert_non_null(strstr(e.msg, "WORLD_SIZE=\"x1\""));
    setenv("WORLD_SIZE", "1", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), S3S_ECONFIG);
    assert_non_null(strstr(e.msg, "rank 1 is not below the world size 1"));
    setenv("WORLD_SIZE", "-2", 1);
    assert_int_equal(s3s_topology_detect(&t, "/nonexistent", &e), S3S_ECONFIG);
}

static void test_sagemaker(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("topo");
    char path[512];
    snprintf(path, sizeof(path), "%s/resourceconfig.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"current_host\": \"algo-2\", \"hosts\": [\"algo-1\", \"algo-2\", \"algo-3\"],"
          " \"network_interface_name\": \"eth0\"}",
          f);
    fclose(f);
    s3s_topology t;
    s3s_errinfo e = {0};
    assert_int_equal(s3s_topology_detect(&t, path, &e), 0);
    assert_string_equal(t.source, "sagemaker");
    assert_int_equal(t.rank, 1);
    assert_int_equal(t.world_size, 3);
    setenv("S3SHARD_RESOURCE_CONFIG", path, 1); /* the environment names the file too */
    assert_int_equal(s3s_topology_detect(&t, NULL, &e), 0);
    assert_int_equal(t.rank, 1);
    f = fopen(path, "w");
    fputs("{\"current_host\": \"algo-9\", \"hosts\": [\"algo-1\"]}", f);
    fclose(f);
    assert_int_equal(s3s_topology_detect(&t, path, &e), S3S_ECONFIG);
    assert_non_null(strstr(e.msg, "current_host \"algo-9\" is not in hosts"));
    f = fopen(path, "w");
    fputs("{\"current_host\": ", f);
    fclose(f);
    assert_int_equal(s3s_topology_detect(&t, path, &e), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "resourceconfig.json:1:"));
    s3s_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_launchers, clear),
        cmocka_unit_test_setup(test_errors, clear),
        cmocka_unit_test_setup(test_sagemaker, clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
