/*  =========================================================================
    cmd_report - `crm report NAME [--since D] [--until D] [--by X]`

    The server sends a table (columns with units, rows with values); this
    prints it for people (money by its currency, percentages, durations,
    "(<3)" where an aggregate of too few records shows no figures), as CSV
    (--csv, plain numbers) or JSON (--json), and draws bars of one column
    (--chart COLUMN; on a terminal the first column by default, with a
    sparkline when the rows are months).
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "crm_record.h"
#include "entity.h"
#include "crm_utf8.h"

static const char *const s_names[] = {"summary", "pipeline", "sales", "tickets",
                                      "satisfaction", "value", "activity", NULL};

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: crm report NAME [--since DATE] [--until DATE] [--by WHAT] [--csv] [--chart "
            "COLUMN|--no-chart]\n\n"
            "  summary       new customers by stage (--by), a column per source\n"
            "  pipeline      deals by stage: amount, weighted amount, won, lost, win rate\n"
            "  sales         orders by month: revenue, AOV, buyers, orders per buyer, repeat rate\n"
            "  tickets       tickets by month: opened, resolved, breached, response and\n"
            "                resolution times (p50, p90)\n"
            "  satisfaction  feedback by month: CSAT, NPS\n"
            "  value         customers by value tier: buyers, spend, orders, time since last order\n"
            "  activity      activities per user, a column per type\n\n"
            "--by month, owner, region, industry, or a field of the record or its customer\n"
            "(stage, tier, source, priority...). Figures cover what you may read; marketing\n"
            "sees deals and orders in aggregate, rows of fewer than 3 records without figures.\n"
            "--json prints the table as the server sent it; --csv plain numbers.\n");
}

/* One value for people: WIDE enough for the unit. */
static void
s_value(const char *unit, int64_t v, const char *currency, bool csv, char *out, size_t n)
{
    if (!strcmp(unit, "money")) {
        crm_money_format(v, currency, !csv, out, n);
        char *space = csv ? strchr(out, ' ') : NULL;
        if (space) /* CSV: the number; the header names the unit */
            *space = '\0';
    } else if (!strcmp(unit, "percent") || !strcmp(unit, "score")) {
        const char *sign = v < 0 ? "-" : "";
        long long a = v < 0 ? -(long long)v : (long long)v;
        snprintf(out, n, "%s%lld.%02lld%s", sign, a / 100, a % 100,
                 !csv && !strcmp(unit, "percent") ? "%" : "");
    } else if (!strcmp(unit, "ms")) {
        if (csv) {
            snprintf(out, n, "%lld", (long long)(v / 1000));
        } else {
            double s = (double)v / 1000.0;
            if (s < 60)
                snprintf(out, n, "%.0fs", s);
            else if (s < 3600)
                snprintf(out, n, "%.0fm", s / 60);
            else if (s < 86400 * 2)
                snprintf(out, n, "%.1fh", s / 3600);
            else
                snprintf(out, n, "%.1fd", s / 86400);
        }
    } else {
        snprintf(out, n, "%lld", (long long)v);
    }
}

static void
s_pad(const char *s, size_t width, bool right)
{
    size_t w = crm_utf8_width(s);
    if (right)
        for (size_t i = w; i < width; i++)
            putchar(' ');
    fputs(s, stdout);
    if (!right)
        for (size_t i = w; i < width; i++)
            putchar(' ');
}

/* Bars of column COL (values >= 0), scaled to the largest; eighths of a block. */
static void
s_chart(const Crm__ReportReply *rep, size_t col, char **keys, size_t keyw)
{
    static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    int64_t max = 0;
    for (size_t i = 0; i < rep->n_rows; i++)
        if (!rep->rows[i]->empty[col] && rep->rows[i]->values[col] > max)
            max = rep->rows[i]->values[col];
    printf("\n%s by %s\n", rep->columns[col]->name, rep->by);
    const int width = 40;
    for (size_t i = 0; i < rep->n_rows; i++) {
        const Crm__ReportRow *row = rep->rows[i];
        char v[64];
        s_pad(keys[i], keyw, false);
        printf("  ");
        if (row->empty[col] || row->values[col] <= 0 || max <= 0) {
            printf("%s\n", row->suppressed ? "(<3)" : "");
            continue;
        }
        long long units = (long long)((double)row->values[col] / (double)max * width * 8);
        for (long long u = 0; u < units / 8; u++)
            fputs("█", stdout);
        fputs(eighths[units % 8], stdout);
        s_value(rep->columns[col]->unit, row->values[col], rep->currency, false, v, sizeof v);
        printf(" %s\n", v);
    }
    if (!strcmp(rep->by, "month") && rep->n_rows > 1) { /* the trend at a glance */
        static const char *const spark[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
        printf("trend  ");
        for (size_t i = 0; i < rep->n_rows; i++) {
            const Crm__ReportRow *row = rep->rows[i];
            int64_t x = row->empty[col] || max <= 0 || row->values[col] < 0 ? 0 : row->values[col];
            fputs(spark[max > 0 ? (int)(x * 7 / max) : 0], stdout);
        }
        putchar('\n');
    }
}

static void
s_print(const Crm__ReportReply *rep, bool csv, long chart_col)
{
    size_t ncols = rep->n_columns, nrows = rep->n_rows;
    char **keys = calloc(nrows + 1, sizeof *keys);
    char ***cells = calloc(nrows + 1, sizeof *cells);
    size_t *w = calloc(ncols + 1, sizeof *w);
    if (!keys || !cells || !w)
        abort();
    char by[64];
    snprintf(by, sizeof by, "%s", rep->by);
    for (char *p = by; *p; p++)
        if (!csv && *p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    w[0] = crm_utf8_width(by);
    for (size_t c = 0; c < ncols; c++)
        if (crm_utf8_width(rep->columns[c]->name) > w[c + 1])
            w[c + 1] = crm_utf8_width(rep->columns[c]->name);
    for (size_t i = 0; i < nrows; i++) {
        const Crm__ReportRow *row = rep->rows[i];
        keys[i] = csv ? strdup(row->key) : out_escape(row->key);
        if (crm_utf8_width(keys[i]) > w[0])
            w[0] = crm_utf8_width(keys[i]);
        cells[i] = calloc(ncols + 1, sizeof *cells[i]);
        for (size_t c = 0; c < ncols && c < row->n_values; c++) {
            char v[64];
            if (row->suppressed)
                snprintf(v, sizeof v, "%s", csv ? "" : "(<3)");
            else if (c < row->n_empty && row->empty[c])
                snprintf(v, sizeof v, "%s", csv ? "" : "-");
            else
                s_value(rep->columns[c]->unit, row->values[c], rep->currency, csv, v, sizeof v);
            cells[i][c] = strdup(v);
            if (crm_utf8_width(v) > w[c + 1])
                w[c + 1] = crm_utf8_width(v);
        }
    }
    if (csv) {
        cmd_csv_cell(stdout, by, false, ',');
        for (size_t c = 0; c < ncols; c++) {
            char h[96];
            const char *u = rep->columns[c]->unit;
            snprintf(h, sizeof h, "%s%s", rep->columns[c]->name,
                     !strcmp(u, "money")     ? " (major units)"
                     : !strcmp(u, "ms")      ? " (s)"
                     : !strcmp(u, "percent") ? " (%)"
                                             : "");
            putchar(',');
            cmd_csv_cell(stdout, h, false, ',');
        }
        putchar('\n');
        for (size_t i = 0; i < nrows; i++) {
            cmd_csv_cell(stdout, keys[i], false, ',');
            for (size_t c = 0; c < ncols; c++) {
                putchar(',');
                cmd_csv_cell(stdout, cells[i][c] ? cells[i][c] : "", false, ',');
            }
            putchar('\n');
        }
    } else {
        s_pad(by, w[0], false);
        for (size_t c = 0; c < ncols; c++) {
            printf("  ");
            s_pad(rep->columns[c]->name, w[c + 1], true);
        }
        putchar('\n');
        for (size_t i = 0; i < nrows; i++) {
            s_pad(keys[i], w[0], false);
            for (size_t c = 0; c < ncols; c++) {
                printf("  ");
                s_pad(cells[i][c] ? cells[i][c] : "", w[c + 1], true);
            }
            putchar('\n');
        }
        if (!nrows)
            printf("(nothing in this period)\n");
        printf("%s%llu records read, as of change %llu, %lld ms\n",
               rep->aggregate ? "aggregate of records you cannot read one by one; " : "",
               (unsigned long long)rep->records, (unsigned long long)rep->as_of,
               (long long)rep->millis);
        if (chart_col >= 0 && (size_t)chart_col < ncols && nrows)
            s_chart(rep, (size_t)chart_col, keys, w[0]);
    }
    for (size_t i = 0; i < nrows; i++) {
        for (size_t c = 0; c < ncols; c++)
            free(cells[i][c]);
        free(cells[i]);
        free(keys[i]);
    }
    free(cells);
    free(keys);
    free(w);
}

int
cmd_report(int argc, char **argv, cli_ctx_t *ctx)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *name = argv[1];
    bool known = false;
    for (size_t i = 0; s_names[i]; i++)
        known = known || !strcmp(s_names[i], name);
    if (!known) {
        fprintf(stderr, "crm report: no report '%s' (reports: summary, pipeline, sales, tickets, "
                        "satisfaction, value, activity)\n",
                name);
        return EXIT_USAGE;
    }
    Crm__Filter f[8], *fp[8];
    char when[2][48], offset[24];
    size_t nf = 0;
    bool csv = false, no_chart = false;
    const char *chart = NULL;
    f[nf] = (Crm__Filter)CRM__FILTER__INIT; /* pipeline, satisfaction: the table shape */
    f[nf].field = (char *)"table";
    f[nf].value = (char *)"1";
    fp[nf] = &f[nf];
    nf++;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--since") || !strcmp(a, "--until") || !strcmp(a, "--by")) &&
            i + 1 < argc && nf < 7) {
            f[nf] = (Crm__Filter)CRM__FILTER__INIT;
            f[nf].field = (char *)a + 2;
            f[nf].value = argv[++i];
            if (strcmp(a, "--by")) { /* since, until: the user's local days and times */
                char *w = when[a[2] == 'u'];
                if (!entity_local_time(argv[i], a[2] == 'u', w, sizeof when[0])) {
                    fprintf(stderr, "crm report: %s '%s': give a date (2026-11-01) or a time "
                                    "('2026-11-01 09:00', in your time zone unless it says its "
                                    "own)\n",
                            a, argv[i]);
                    return EXIT_USAGE;
                }
                f[nf].value = w;
            }
            fp[nf] = &f[nf];
            nf++;
        } else if (!strcmp(a, "--csv")) {
            csv = true;
        } else if (!strcmp(a, "--chart") && i + 1 < argc) {
            chart = argv[++i];
        } else if (!strcmp(a, "--no-chart")) {
            no_chart = true;
        } else {
            bool help = !strcmp(a, "--help") || !strcmp(a, "-h");
            if (!help)
                fprintf(stderr, "crm report: unknown option '%s'\n", a);
            s_usage(help ? stdout : stderr);
            return help ? EXIT_OK : EXIT_USAGE;
        }
    }
    /* months and days are the user's: this zone's offset from UTC now, in minutes */
    time_t now = time(NULL);
    struct tm ltm;
    localtime_r(&now, &ltm);
    snprintf(offset, sizeof offset, "%ld", (long)(ltm.tm_gmtoff / 60));
    f[nf] = (Crm__Filter)CRM__FILTER__INIT;
    f[nf].field = (char *)"utc_offset";
    f[nf].value = offset;
    fp[nf] = &f[nf];
    nf++;
    Crm__ReportRequest rr = CRM__REPORT_REQUEST__INIT;
    rr.name = (char *)name;
    rr.filters = fp;
    rr.n_filters = nf;
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = CRM__OP__OP_REPORT;
    req.body_case = CRM__REQUEST__BODY_REPORT;
    req.report = &rr;
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = conn_open(ctx, &conn);
    /* not --timeout: the answer may take long (a report may read 1M records), reaching the
       server still takes at most the usual timeout */
    if (rc == EXIT_OK && ctx->timeout_ms == CLI_TIMEOUT_MS)
        conn_set_timeout(conn, CLI_REPORT_TIMEOUT_MS);
    if (rc == EXIT_OK && (rc = conn_call(conn, &req, &reply)) == EXIT_OK &&
        reply->body_case == CRM__REPLY__BODY_REPORT) {
        const Crm__ReportReply *rep = reply->report;
        long col = -1;
        if (chart) {
            for (size_t c = 0; c < rep->n_columns; c++)
                if (!strcmp(rep->columns[c]->name, chart))
                    col = (long)c;
            if (col < 0) {
                fprintf(stderr, "crm report: --chart '%s': no such column (columns:", chart);
                for (size_t c = 0; c < rep->n_columns; c++)
                    fprintf(stderr, "%s '%s'", c ? "," : "", rep->columns[c]->name);
                fprintf(stderr, ")\n");
                rc = EXIT_USAGE;
            }
        } else if (!no_chart && isatty(STDOUT_FILENO)) {
            col = 0;
        }
        if (rc == EXIT_OK) {
            if (ctx->json)
                out_json(stdout, &rep->base);
            else
                s_print(rep, csv, no_chart ? -1 : col);
        }
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}
