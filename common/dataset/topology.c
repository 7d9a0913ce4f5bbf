/* topology.c: rank and world size from the launcher's environment.
 *
 * Process-level launchers (torch, Open MPI, PMI, Slurm) come before SageMaker's
 * resourceconfig.json: under torchrun or mpirun on SageMaker both are present,
 * and a rank needs its process share, not its host's. */
#include "common/dataset/errinfo.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_RESOURCECONFIG "/opt/ml/input/config/resourceconfig.json"

/* parse_u32: a decimal number from the environment variable var. */
static int parse_u32(const char *var, const char *s, uint32_t *out, s3s_errinfo *e)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v > UINT32_MAX)
        return s3s__ei_set(e, S3S_ECONFIG, "%s=\"%.40s\" is not a number from 0 to 4294967295", var,
                           s);
    *out = (uint32_t)v;
    return 0;
}

typedef struct launcher {
    const char *name, *rank, *size, *local;
} launcher;

static const launcher launchers[] = {
    {"torch", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
};

static int check(s3s_topology *t, s3s_errinfo *e)
{
    if (t->world_size == 0)
        return s3s__ei_set(e, S3S_ECONFIG, "%s: world size 0", t->source);
    if (t->rank >= t->world_size)
        return s3s__ei_set(e, S3S_ECONFIG, "%s: rank %u is not below the world size %u", t->source,
                           t->rank, t->world_size);
    return 0;
}

static int from_resourceconfig(s3s_topology *t, const char *path, s3s_errinfo *e)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (root == NULL)
        return s3s__ei_set(e, S3S_EPARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    int rc = 0;
    json_t *cur = json_object_get(root, "current_host");
    json_t *hosts = json_object_get(root, "hosts");
    if (!json_is_string(cur) || !json_is_array(hosts) || json_array_size(hosts) == 0) {
        rc = s3s__ei_set(e, S3S_ECONFIG,
                         "%s: expected \"current_host\" (a string) and \"hosts\" (a non-empty "
                         "array of strings)",
                         path);
        goto out;
    }
    size_t n = json_array_size(hosts), i;
    for (i = 0; i < n; i++) {
        json_t *h = json_array_get(hosts, i);
        if (!json_is_string(h)) {
            rc = s3s__ei_set(e, S3S_ECONFIG, "%s: hosts[%zu] is not a string", path, i);
            goto out;
        }
        if (strcmp(json_string_value(h), json_string_value(cur)) == 0)
            break;
    }
    if (i == n) {
        rc = s3s__ei_set(e, S3S_ECONFIG, "%s: current_host \"%.100s\" is not in hosts", path,
                         json_string_value(cur));
        goto out;
    }
    t->rank = (uint32_t)i;
    t->world_size = (uint32_t)n;
    t->local_rank = 0;
    snprintf(t->source, sizeof(t->source), "sagemaker");
out:
    json_decref(root);
    return rc;
}

int s3s_topology_detect(s3s_topology *out, const char *resourceconfig, s3s_errinfo *e)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(launchers) / sizeof(launchers[0]); i++) {
        const launcher *l = &launchers[i];
        const char *r = getenv(l->rank), *s = getenv(l->size), *lr = getenv(l->local);
        if (r == NULL && s == NULL)
            continue;
        if (r == NULL || s == NULL)
            return s3s__ei_set(e, S3S_ECONFIG, "%s is set but %s is not (%s launcher)",
                               r ? l->rank : l->size, r ? l->size : l->rank, l->name);
        snprintf(out->source, sizeof(out->source), "%s", l->name);
        int rc = parse_u32(l->rank, r, &out->rank, e);
        if (rc == 0)
            rc = parse_u32(l->size, s, &out->world_size, e);
        if (rc == 0 && lr != NULL)
            rc = parse_u32(l->local, lr, &out->local_rank, e);
        return rc ? rc : check(out, e);
    }
    const char *path = resourceconfig;
    if (path == NULL)
        path = getenv("S3SHARD_RESOURCE_CONFIG");
    if (path == NULL)
        path = DEFAULT_RESOURCECONFIG;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        fclose(f);
        int rc = from_resourceconfig(out, path, e);
        return rc ? rc : check(out, e);
    }
    return s3s__ei_set(e, S3S_ENOTOPO,
                       "no rank and world size: pass --rank R --world-size N, or run under a "
                       "launcher that sets RANK/WORLD_SIZE (torch), OMPI_COMM_WORLD_RANK/_SIZE "
                       "(Open MPI), PMI_RANK/PMI_SIZE, SLURM_PROCID/SLURM_NTASKS, or on SageMaker "
                       "(%s)",
                       path);
}
