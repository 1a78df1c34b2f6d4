/*  conflict - is an update based on an older version a real conflict? (see conflict.h) */
#include "conflict.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"

#define CLASHES_SHOWN 2 /* fields named in one message */

/* A field of the update that someone changed after the base version: the
   newest such change. */
typedef struct {
    const char *field; /* the update's field (entity descriptor name) */
    char user[65];
    int64_t time;
    uint64_t version;
} s_clash_t;

typedef struct {
    const char *const *fields; /* the update's fields, by descriptor name */
    size_t nfields;
    uint64_t base, cur;
    uint64_t seen;      /* distinct versions in (base, cur] met so far */
    uint8_t met[CONFLICT_BUDGET / 8 + 1]; /* ... which: bit v - base - 1 */
    bool unknown;       /* an entry that cannot be placed: treat as a conflict */
    s_clash_t clash[CLASHES_SHOWN];
    size_t nclash, more; /* shown; and beyond them */
} s_scan_t;

static void
s_note(s_scan_t *s, const char *field, const Crm__AuditEntry *entry)
{
    for (size_t i = 0; i < s->nclash; i++)
        if (!strcmp(s->clash[i].field, field))
            return; /* newest first: the first one met is the newest */
    if (s->nclash == CLASHES_SHOWN) {
        s->more++;
        return;
    }
    s_clash_t *c = &s->clash[s->nclash++];
    c->field = field;
    snprintf(c->user, sizeof c->user, "%s", entry->user);
    c->time = entry->time;
    c->version = entry->version;
}

static audit_verdict_t
s_entry(Crm__AuditEntry *entry, void *arg)
{
    s_scan_t *s = arg;
    if (entry->denied || (entry->version == 0 && entry->n_changes == 0))
        return AUDIT_SKIP; /* a denial, an admin's read: no version of the record */
    if (entry->version == 0) { /* a change written before versions were recorded */
        s->unknown = true;
        return AUDIT_STOP;
    }
    if (entry->version <= s->base || entry->version > s->cur)
        return AUDIT_SKIP; /* older than the base (or a clock that stepped back) */
    for (size_t i = 0; i < entry->n_changes; i++)
        for (size_t f = 0; f < s->nfields; f++)
            if (!strcmp(entry->changes[i]->field, s->fields[f]))
                s_note(s, s->fields[f], entry);
    uint64_t bit = entry->version - s->base - 1;
    if (!(s->met[bit / 8] & (1u << (bit % 8)))) {
        s->met[bit / 8] |= (uint8_t)(1u << (bit % 8));
        s->seen++;
    }
    return s->seen == s->cur - s->base ? AUDIT_STOP : AUDIT_SKIP;
}

crm_err_t
conflict_check(store_group_t *g, const crm_entity_t *e, const char *id, uint64_t num,
               uint64_t base, uint64_t cur, char *const *fields, size_t nfields, char *errbuf)
{
    if (base == cur)
        return CRM_OK;
    if (base > cur) {
        snprintf(errbuf, CRM_ERRBUF,
                 "%s '%.40s' is at version %llu, older than the version %llu your change was "
                 "based on; reload it and try again",
                 e->name, id, (unsigned long long)cur, (unsigned long long)base);
        return CRM_ERR_CONFLICT;
    }
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < nfields && n < 64; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, fields[i]);
        if (fd)
            names[n++] = fd->name;
    }
    s_scan_t s = {.fields = names, .nfields = n, .base = base, .cur = cur};
    bool cut = false;
    crm_err_t rc = cur - base > CONFLICT_BUDGET
                       ? CRM_ERR_CONFLICT /* more changes since than one check may read */
                       : audit_record_scan(g, e, num, CONFLICT_BUDGET, s_entry, &s, &cut);
    if (rc != CRM_OK || s.unknown || s.seen < cur - base) {
        /* the trail cannot say what changed: as before, any change is a conflict */
        snprintf(errbuf, CRM_ERRBUF,
                 "%s '%.40s' changed meanwhile: it is at version %llu, your change was based on "
                 "version %llu; reload it and try again",
                 e->name, id, (unsigned long long)cur, (unsigned long long)base);
        return CRM_ERR_CONFLICT;
    }
    if (s.nclash == 0)
        return CRM_OK; /* only other fields changed: the update merges */
    int64_t now = crm_time_now_ms();
    size_t used = (size_t)snprintf(errbuf, CRM_ERRBUF, "%s '%.40s' changed meanwhile:", e->name,
                                   id);
    for (size_t i = 0; i < s.nclash && used < CRM_ERRBUF; i++) {
        const s_clash_t *c = &s.clash[i];
        /* how long ago, not a clock time: the server does not know the reader's
           time zone (issue 12 item 5); `crm … history ID FIELD` shows the time */
        char when[32];
        int64_t ago = (now - c->time) / 1000;
        if (ago < 0)
            ago = 0;
        if (ago < 120)
            snprintf(when, sizeof when, "%lld s ago", (long long)ago);
        else if (ago < 7200)
            snprintf(when, sizeof when, "%lld min ago", (long long)(ago / 60));
        else if (ago < 172800)
            snprintf(when, sizeof when, "%lld h ago", (long long)(ago / 3600));
        else
            snprintf(when, sizeof when, "%lld days ago", (long long)(ago / 86400));
        used += (size_t)snprintf(errbuf + used, CRM_ERRBUF - used,
                                 "%s '%s' was changed by %s %s (version %llu)",
                                 i ? ";" : "", c->field, c->user, when,
                                 (unsigned long long)c->version);
    }
    if (s.more && used < CRM_ERRBUF)
        used += (size_t)snprintf(errbuf + used, CRM_ERRBUF - used, "; and %zu more field%s",
                                 s.more, s.more == 1 ? "" : "s");
    if (used < CRM_ERRBUF)
        snprintf(errbuf + used, CRM_ERRBUF - used,
                 "; your change was based on version %llu (now %llu): reload it and try again",
                 (unsigned long long)base, (unsigned long long)cur);
    return CRM_ERR_CONFLICT;
}
