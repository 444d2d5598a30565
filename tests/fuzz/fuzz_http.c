/*
 * fuzz_http.c - libFuzzer target: raw bytes into a running listener (scripts/fuzz).
 *
 * One listener per fuzzing process, on 127.0.0.1 with an ephemeral port, with a sync
 * channel, a client whose password is "fuzz-secret" and a transaction log whose
 * database does not answer (requests that get that far are answered 503). Each input
 * is sent as is on a new connection, which is then half-closed; the answer is read
 * for a moment. A crash or sanitizer report in any listener thread ends the run.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fuzz_files.h"
#include "hibus/auth.h"
#include "hibus/config.h"
#include "hibus/listener.h"
#include "hibus/log.h"
#include "hibus/readers.h"
#include "hibus/txlog.h"

static int port;

static void put_text(const char *dir, const char *name, const char *text)
{
    fuzz_put(dir, name, text, strlen(text));
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    reader_global_init();
    char dir[256];
    fuzz_tree("/tmp", "http", dir, sizeof dir);
    char hash[256], clients[1024];
    struct hibus_error err = {0};
    if (auth_hash_password("fuzz-secret", hash, sizeof hash, &err) != HIBUS_OK)
        abort();
    snprintf(clients, sizeof clients,
             "roles: [lmis]\nclients:\n  - { id: lmis, roles: [lmis], password_hash: \"%s\" }\n",
             hash);
    put_text(dir, "clients.yaml", clients);
    /* a port free right now (listen.port cannot be 0) */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(probe, (struct sockaddr *)&a, &alen) != 0)
        abort();
    close(probe);
    char main_yaml[512];
    snprintf(main_yaml, sizeof main_yaml,
             "listen: { address: 127.0.0.1, port: %d }\n"
             "database: { url: \"postgresql://127.0.0.1:1/none\", connect_timeout: 1s }\n"
             "limits: { max_body: 64KiB, login_failures: 0, request_deadline: 2s }\n"
             "log: { level: error }\n",
             ntohs(a.sin_port));
    put_text(dir, "hibus.yaml", main_yaml);
    put_text(dir, "channels/stock.yaml",
             "name: stock\nmatch: { path: /lmis/stock, methods: [POST], content_types: "
             "[application/json] }\nallow: { roles: [lmis] }\n"
             "routes: [{ name: r, url: \"http://127.0.0.1:1/x\", timeout: 1s }]\n");
    put_text(dir, "channels/any.yaml",
             "name: any\nmatch: { path_prefix: /any/ }\nallow: { roles: [lmis] }\n"
             "routes: [{ name: r, url: \"http://127.0.0.1:1/y\", timeout: 1s }]\n");
    char path[300];
    snprintf(path, sizeof path, "%s/hibus.yaml", dir);
    struct config *cfg = NULL;
    struct hibus_diags d = {0};
    if (config_load(path, &cfg, &d) != HIBUS_OK) {
        hibus_diags_print(&d, stderr);
        abort();
    }
    struct config_holder *holder = config_holder_new(cfg);
    struct txlog *tl = NULL;
    if (txlog_open(cfg->database_url, 2, 1000, &tl, &err) != HIBUS_OK)
        abort();
    struct listener_deps deps = {
        .cfg = cfg, .configs = holder, .tl = tl, .auth = auth_cache_new(), .node = "fuzz"};
    struct listener *l = NULL;
    if (listener_start(&deps, &l, &err) != HIBUS_OK)
        abort();
    port = listener_port(l);
    return 0; /* the listener lives as long as the process */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 128 * 1024)
        return 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Closed with a reset, so that this side keeps no TIME_WAIT: tens of thousands of
     * runs would use up the ephemeral ports (the first 10-minute run stopped so). */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
        abort();
    int rc = connect(s, (struct sockaddr *)&to, sizeof to);
    if (rc != 0 && errno == EINTR) {
        /* libFuzzer's timer signal: the connection goes on, wait for it */
        struct pollfd w = {.fd = s, .events = POLLOUT};
        while (poll(&w, 1, 1000) < 0 && errno == EINTR)
            ;
        int e = 0;
        socklen_t elen = sizeof e;
        rc = getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 && e == 0 ? 0 : -1;
        errno = e;
    }
    if (rc != 0) {
        perror("fuzz_http: connect to the listener");
        abort(); /* the listener is gone: that is a finding too */
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(s, data + off, size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(s, SHUT_WR);
    char buf[4096];
    struct pollfd p = {.fd = s, .events = POLLIN};
    for (int rounds = 0; rounds < 4 && poll(&p, 1, 20) > 0; rounds++)
        if (recv(s, buf, sizeof buf, 0) <= 0)
            break;
    close(s);
    return 0;
}
