/*  crm_kv - "key = value" text files */
#include "crm_kv.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KV_MAX_BYTES 65536
#define KV_MAX_PAIRS 32

struct crm_kv {
    char *text;                 /* the file's bytes, cut in place */
    size_t size;                /* allocated size of text */
    char *keys[KV_MAX_PAIRS];   /* pointers into text */
    char *values[KV_MAX_PAIRS]; /* pointers into text */
    int count;                  /* pairs found */
};

static char *
s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

crm_err_t
crm_kv_load(const char *path, bool secret, crm_kv_t **out, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    crm_kv_t *self = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    *out = NULL;
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, CRM_ERRBUF, "cannot open '%s': %s", path, strerror(e));
        rc = e == ENOENT                ? CRM_ERR_NOT_FOUND
             : e == EACCES || e == EPERM ? CRM_ERR_PERMISSION_DENIED
                                         : CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(errbuf, CRM_ERRBUF, "'%s' is not a regular file", path);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    if (secret && (st.st_mode & 077) != 0) {
        snprintf(errbuf, CRM_ERRBUF,
                 "secret file '%s' is accessible by others (mode %03o); run 'chmod 600 %s'", path,
                 (unsigned)(st.st_mode & 0777), path);
        rc = CRM_ERR_PERMISSION_DENIED;
        goto cleanup;
    }
    if (secret && st.st_uid != geteuid()) {
        snprintf(errbuf, CRM_ERRBUF, "secret file '%s' belongs to uid %u, not to you (uid %u)",
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
        rc = CRM_ERR_PERMISSION_DENIED;
        goto cleanup;
    }
    if (st.st_size > KV_MAX_BYTES) {
        snprintf(errbuf, CRM_ERRBUF, "'%s' is too large (%lld bytes) to be a key file", path,
                 (long long)st.st_size);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->size = (size_t)st.st_size + 1;
    self->text = calloc(1, self->size);
    CRM_ASSERT_ALLOC(self->text);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, self->text + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    char *save = NULL;
    int lineno = 0;
    for (char *line = strtok_r(self->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        line = s_trim(line);
        if (*line == '\0' || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq || self->count == KV_MAX_PAIRS) {
            snprintf(errbuf, CRM_ERRBUF, "'%s' line %d: expected 'key = value'", path, lineno);
            rc = CRM_ERR_INVALID_ARGUMENT;
            goto cleanup;
        }
        *eq = '\0';
        char *key = s_trim(line);
        for (int i = 0; i < self->count; i++)
            if (strcmp(self->keys[i], key) == 0) {
                snprintf(errbuf, CRM_ERRBUF, "'%s' line %d: '%s' is given twice", path, lineno,
                         key);
                rc = CRM_ERR_INVALID_ARGUMENT;
                goto cleanup;
            }
        self->keys[self->count] = key;
        self->values[self->count] = s_trim(eq + 1);
        self->count++;
    }
    *out = self;
    self = NULL;
cleanup:
    if (fd >= 0)
        close(fd);
    crm_kv_destroy(&self);
    return rc;
}

const char *
crm_kv_get(const crm_kv_t *self, const char *key)
{
    for (int i = 0; i < self->count; i++)
        if (strcmp(self->keys[i], key) == 0)
            return self->values[i];
    return NULL;
}

void
crm_kv_destroy(crm_kv_t **self_p)
{
    crm_kv_t *self = *self_p;
    if (!self)
        return;
    if (self->text) {
        sodium_memzero(self->text, self->size);
        free(self->text);
    }
    free(self);
    *self_p = NULL;
}

crm_err_t
crm_kv_save(const char *path, const char *header, const char *const *pairs, bool secret,
            bool exclusive, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char tmp[4096];
    FILE *f = NULL;
    int fd = -1;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        snprintf(errbuf, CRM_ERRBUF, "path '%s' is too long", path);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (exclusive && access(path, F_OK) == 0) {
        snprintf(errbuf, CRM_ERRBUF, "'%s' already exists; remove it first or pick another path",
                 path);
        return CRM_ERR_ALREADY_EXISTS;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, secret ? 0600 : 0644);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(errbuf, CRM_ERRBUF, "cannot write '%s': %s", path, strerror(errno));
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    fd = -1; /* owned by f now */
    if (header)
        fputs(header, f);
    for (const char *const *p = pairs; p[0] && p[1]; p += 2)
        fprintf(f, "%s = %s\n", p[0], p[1]);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot write '%s': %s", path, strerror(errno));
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    fclose(f);
    f = NULL;
    if (rename(tmp, path) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot write '%s': %s", path, strerror(errno));
        rc = CRM_ERR_STORAGE;
    }
cleanup:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (rc != CRM_OK)
        unlink(tmp);
    return rc;
}
