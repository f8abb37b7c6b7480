/*
 * main.c - the vidgate command: `serve` runs the API server; `keys`,
 * `credits`, `ledger` and `migrate` administer the same database from a shell.
 *
 * Every subcommand takes --data DIR and --config FILE (or VIDGATE_DATA and
 * VIDGATE_CONFIG), so operators and tests can run several instances side
 * by side.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "util/log.h"
#include "util/parse.h"

static const char usage[] =
    "usage: vidgate [--data DIR] [--config FILE] COMMAND [ARGS]\n"
    "\n"
    "  serve [--listen HOST:PORT]         run the API server\n"
    "  keys create --name N --credits C   new account with C credits and a\n"
    "              [--account ID]         key (or a key for account ID);\n"
    "                                     prints the key alone\n"
    "  keys list                          every key, with its account\n"
    "  keys revoke KEY_ID                 stop a key and its tokens now\n"
    "  keys limits KEY_ID [--rpm N]       the key's requests per minute and\n"
    "              [--jobs N]             unfinished jobs at once (0 =\n"
    "                                     unlimited, \"default\" = the\n"
    "                                     server's limits)\n"
    "  credits add --account ID --amount C  grant credits\n"
    "  ledger check                       verify every balance; exit 1 if\n"
    "                                     any account does not add up\n"
    "  migrate                            bring the store's schema up to\n"
    "                                     date, then exit (serve does it\n"
    "                                     too, at start)\n"
    "\n"
    "Environment: VIDGATE_DATA, VIDGATE_CONFIG, VIDGATE_LISTEN,\n"
    "VIDGATE_PUBLIC_URL, VIDGATE_DATABASE_URL. See README.md and\n"
    "docs/config.md.\n";

typedef struct cli {
    const char *data;
    const char *config;
    const char *listen;
    const char *name;
    const char *credits;
    const char *account;
    const char *amount;
    const char *rpm;
    const char *jobs;
    bool help;
    int argc;
    char **argv; /* positional arguments after the options */
} cli;

static int fail(const vg_error *err)
{
    fprintf(stderr, "vidgate: %s\n", err->message);
    return 1;
}

static int parse_cli(int argc, char **argv, cli *c)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"name", required_argument, NULL, 'n'},
        {"credits", required_argument, NULL, 'C'},
        {"account", required_argument, NULL, 'a'},
        {"amount", required_argument, NULL, 'm'},
        {"rpm", required_argument, NULL, 'r'},
        {"jobs", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            c->data = optarg;
            break;
        case 'c':
            c->config = optarg;
            break;
        case 'l':
            c->listen = optarg;
            break;
        case 'n':
            c->name = optarg;
            break;
        case 'C':
            c->credits = optarg;
            break;
        case 'a':
            c->account = optarg;
            break;
        case 'm':
            c->amount = optarg;
            break;
        case 'r':
            c->rpm = optarg;
            break;
        case 'j':
            c->jobs = optarg;
            break;
        case 'h':
            c->help = true;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* Options may come before or after the subcommand words. */
static int gather(int argc, char **argv, cli *c)
{
    char *words[8];
    int n = 0;
    optind = 1;
    while (optind < argc) {
        if (parse_cli(argc, argv, c) != 0)
            return -1;
        if (optind < argc) {
            if (n == 8)
                return -1;
            words[n++] = argv[optind++]; /* getopt resumes after it */
        }
    }
    c->argc = n;
    c->argv = calloc((size_t)n + 1, sizeof(char *));
    memcpy(c->argv, words, (size_t)n * sizeof(char *));
    return 0;
}

static int open_app(vg_app *app, const cli *c)
{
    vg_error err;
    vg_error_clear(&err);
    memset(app, 0, sizeof(*app));
    vg_config_defaults(&app->config);
    const char *config = c->config ? c->config : getenv("VIDGATE_CONFIG");
    if (config != NULL && vg_config_load_file(&app->config, config, &err) != 0)
        return fail(&err);
    if (vg_config_apply_env(&app->config, &err) != 0)
        return fail(&err);
    if (c->data != NULL)
        snprintf(app->config.data_dir, sizeof(app->config.data_dir), "%s",
                 c->data);
    if (c->listen != NULL &&
        vg_config_set_listen(&app->config, c->listen, &err) != 0)
        return fail(&err);
    vg_config_finish(&app->config);
    if (vg_app_open(app, &err) != 0)
        return fail(&err);
    return 0;
}

/* On the first start, a newcomer gets an account and a key at once. */
static int bootstrap(vg_app *app)
{
    vg_error err;
    int64_t count = 0;
    if (app->store->ops->count_accounts(app->store, &count, &err) != 0)
        return fail(&err);
    if (count > 0)
        return 0;
    vg_account account;
    vg_api_key key;
    char plain[48];
    if (app->store->ops->create_account(app->store, "default",
                                        app->config.starting_credits, &account,
                                        &err) != 0 ||
        vg_auth_create_key(app->store, account.id, "default", plain, &key,
                           &err) != 0)
        return fail(&err);
    printf("vidgate: created the first account (developer id %s) with "
           "%.3f credits.\n"
           "vidgate: its API key, shown only this once:\n%s\n",
           account.id, vg_credits_to_double(account.balance), plain);
    fflush(stdout);
    return 0;
}

static void base_url(const vg_config *cfg, char *out, size_t n)
{
    if (cfg->public_url[0] != '\0') {
        snprintf(out, n, "%s", cfg->public_url);
        return;
    }
    const char *host = cfg->listen_host;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    if (strchr(host, ':') != NULL)
        snprintf(out, n, "http://[%s]:%d", host, cfg->listen_port);
    else
        snprintf(out, n, "http://%s:%d", host, cfg->listen_port);
}

static int cmd_serve(vg_app *app)
{
    vg_error err;
    char url[600];
    sigset_t signals;
    if (bootstrap(app) != 0)
        return 1;
    vg_serve_block_signals(&signals);
    base_url(&app->config, url, sizeof(url));
    if (vg_app_start_server(app, url, &err) != 0)
        return fail(&err);
    return vg_serve(app);
}

static int cmd_keys_create(vg_app *app, const cli *c)
{
    vg_error err;
    int64_t credits = 0;
    if (c->name == NULL || *c->name == '\0') {
        fputs("vidgate: keys create needs --name\n", stderr);
        return 2;
    }
    if (c->credits != NULL && vg_parse_credits(c->credits, &credits) != 0) {
        fprintf(stderr,
                "vidgate: --credits must be a number of credits "
                "with at most 3 decimals, got \"%s\"\n",
                c->credits);
        return 2;
    }
    vg_account account;
    const char *account_id = c->account;
    if (account_id == NULL) {
        if (app->store->ops->create_account(app->store, c->name, credits,
                                            &account, &err) != 0)
            return fail(&err);
        account_id = account.id;
    } else if (credits > 0 &&
               app->store->ops->grant_credits(app->store, account_id, credits,
                                              "keys create", &err) != 0) {
        return fail(&err);
    }
    vg_api_key key;
    char plain[48];
    if (vg_auth_create_key(app->store, account_id, c->name, plain, &key,
                           &err) != 0)
        return fail(&err);
    printf("%s\n", plain);
    fprintf(stderr, "vidgate: key %s for account %s\n", key.id, account_id);
    return 0;
}

static int print_key(void *ctx, const vg_api_key *key,
                     const vg_account *account)
{
    (void)ctx;
    char when[32];
    time_t secs = (time_t)(key->created_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s  %-12s %-20s %s  %s  %12.3f  %s\n", key->id, key->prefix,
           key->name, when, account->id,
           vg_credits_to_double(account->balance),
           key->revoked ? "revoked" : "active");
    return 0;
}

static int cmd_keys_list(vg_app *app)
{
    vg_error err;
    printf("%-36s  %-12s %-20s %-20s  %-36s  %12s  %s\n", "KEY ID", "PREFIX",
           "NAME", "CREATED", "ACCOUNT", "CREDITS", "STATE");
    if (app->store->ops->list_keys(app->store, print_key, NULL, &err) != 0)
        return fail(&err);
    return 0;
}

static int cmd_keys_revoke(vg_app *app, const cli *c)
{
    vg_error err;
    if (c->argc < 3) {
        fputs("vidgate: keys revoke needs a KEY_ID (see keys list)\n", stderr);
        return 2;
    }
    int rc = app->store->ops->revoke_key(app->store, c->argv[2], &err);
    if (rc == VG_STORE_NOT_FOUND) {
        fprintf(stderr, "vidgate: no key with id %s\n", c->argv[2]);
        return 1;
    }
    if (rc != 0)
        return fail(&err);
    fprintf(stderr, "vidgate: key %s revoked\n", c->argv[2]);
    return 0;
}

/* A limit option: a whole number >= 0, or "default" (-1). */
static int parse_limit(const char *text, const char *option, int *out)
{
    int64_t n;
    if (text == NULL)
        return 0;
    if (strcmp(text, "default") == 0) {
        *out = -1;
        return 0;
    }
    if (vg_parse_int64(text, &n) != 0 || n < 0 || n > 1000000000) {
        fprintf(stderr,
                "vidgate: %s must be a whole number (0 = "
                "unlimited) or \"default\", got \"%s\"\n",
                option, text);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int cmd_keys_limits(vg_app *app, const cli *c)
{
    vg_error err;
    vg_api_key key;
    if (c->argc < 3) {
        fputs("vidgate: keys limits needs a KEY_ID (see keys list)\n", stderr);
        return 2;
    }
    int rc = app->store->ops->get_key(app->store, c->argv[2], &key, &err);
    if (rc == VG_STORE_NOT_FOUND) {
        fprintf(stderr, "vidgate: no key with id %s\n", c->argv[2]);
        return 1;
    }
    if (rc != 0)
        return fail(&err);
    int rpm = key.rpm_limit, jobs = key.jobs_limit;
    if (parse_limit(c->rpm, "--rpm", &rpm) != 0 ||
        parse_limit(c->jobs, "--jobs", &jobs) != 0)
        return 2;
    if ((c->rpm != NULL || c->jobs != NULL) &&
        app->store->ops->set_key_limits(app->store, key.id, rpm, jobs, &err) !=
            0)
        return fail(&err);
    char r[16] = "default", j[16] = "default";
    if (rpm >= 0)
        snprintf(r, sizeof(r), "%d", rpm);
    if (jobs >= 0)
        snprintf(j, sizeof(j), "%d", jobs);
    printf("key %s: rpm %s, jobs %s\n", key.id, r, j);
    return 0;
}

static int cmd_credits_add(vg_app *app, const cli *c)
{
    vg_error err;
    int64_t amount;
    if (c->account == NULL || c->amount == NULL) {
        fputs("vidgate: credits add needs --account ID --amount C\n", stderr);
        return 2;
    }
    if (vg_parse_credits(c->amount, &amount) != 0 || amount <= 0) {
        fprintf(stderr,
                "vidgate: --amount must be a positive number of "
                "credits with at most 3 decimals, got \"%s\"\n",
                c->amount);
        return 2;
    }
    int rc = app->store->ops->grant_credits(app->store, c->account, amount,
                                            "credits add", &err);
    if (rc == VG_STORE_NOT_FOUND) {
        fprintf(stderr, "vidgate: no account with id %s\n", c->account);
        return 1;
    }
    if (rc != 0)
        return fail(&err);
    vg_account account;
    if (app->store->ops->get_account(app->store, c->account, &account, &err) !=
        0)
        return fail(&err);
    printf("%.3f\n", vg_credits_to_double(account.balance));
    return 0;
}

typedef struct ledger_tally {
    int accounts;
    int broken;
} ledger_tally;

static int check_row(void *ctx, const vg_ledger_row *row)
{
    ledger_tally *tally = ctx;
    int64_t expected = row->grants - row->settled - row->open_reservations;
    tally->accounts++;
    if (row->balance == expected)
        return 0;
    tally->broken++;
    printf("MISMATCH account %s (%s): balance %.3f, but grants %.3f - "
           "settled %.3f - open reservations %.3f = %.3f\n",
           row->account_id, row->name, vg_credits_to_double(row->balance),
           vg_credits_to_double(row->grants),
           vg_credits_to_double(row->settled),
           vg_credits_to_double(row->open_reservations),
           vg_credits_to_double(expected));
    return 0;
}

static int cmd_ledger_check(vg_app *app)
{
    vg_error err;
    ledger_tally tally = {0, 0};
    if (app->store->ops->ledger_rows(app->store, check_row, &tally, &err) != 0)
        return fail(&err);
    printf("ledger: %d accounts checked, %d mismatched\n", tally.accounts,
           tally.broken);
    return tally.broken == 0 ? 0 : 1;
}

static int dispatch(vg_app *app, const cli *c)
{
    const char *cmd = c->argv[0];
    const char *sub = c->argc > 1 ? c->argv[1] : "";
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(app);
    if (strcmp(cmd, "keys") == 0 && strcmp(sub, "create") == 0)
        return cmd_keys_create(app, c);
    if (strcmp(cmd, "keys") == 0 && strcmp(sub, "list") == 0)
        return cmd_keys_list(app);
    if (strcmp(cmd, "keys") == 0 && strcmp(sub, "revoke") == 0)
        return cmd_keys_revoke(app, c);
    if (strcmp(cmd, "keys") == 0 && strcmp(sub, "limits") == 0)
        return cmd_keys_limits(app, c);
    if (strcmp(cmd, "credits") == 0 && strcmp(sub, "add") == 0)
        return cmd_credits_add(app, c);
    if (strcmp(cmd, "ledger") == 0 && strcmp(sub, "check") == 0)
        return cmd_ledger_check(app);
    /* Opening the store migrated it, under the backend's lock. */
    if (strcmp(cmd, "migrate") == 0 && c->argc == 1) {
        printf("store: the %s schema is up to date\n", app->store->ops->name);
        return 0;
    }
    fprintf(stderr,
            "vidgate: unknown command \"%s%s%s\" (vidgate --help "
            "lists them)\n",
            cmd, *sub ? " " : "", sub);
    return 2;
}

int main(int argc, char **argv)
{
    cli c;
    memset(&c, 0, sizeof(c));
    if (gather(argc, argv, &c) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    static const char *const known[] = {"serve", "keys", "credits", "ledger",
                                        "migrate"};
    bool ok = false;
    for (size_t i = 0; c.argc > 0 && i < sizeof(known) / sizeof(known[0]); i++)
        ok = ok || strcmp(c.argv[0], known[i]) == 0;
    /* An unknown command fails whatever else the line says, --help
     * included: a script must not take a typo for success. */
    if (c.argc > 0 && !ok) {
        fprintf(stderr,
                "vidgate: unknown command \"%s\" (vidgate --help lists "
                "them)\n",
                c.argv[0]);
        free(c.argv);
        return 2;
    }
    if (c.help || c.argc == 0) {
        fputs(usage, c.help ? stdout : stderr);
        free(c.argv);
        return c.help ? 0 : 2;
    }
    if (strcmp(c.argv[0], "serve") != 0)
        vg_log_set_quiet(1);
    vg_app app;
    int rc = open_app(&app, &c);
    if (rc == 0)
        rc = dispatch(&app, &c);
    vg_app_close(&app);
    free(c.argv);
    return rc;
}
