/*
 * tls.c - the listener's certificate chain and private key (see hibus/tls.h).
 *
 * Entry points: tls_creds_load, tls_creds_ref, tls_creds_unref, tls_creds_expires,
 * tls_creds_subject, tls_creds_get.
 *
 * The key is matched to the certificate by comparing the SHA-256 key ids of the
 * certificate's public key and of the public half of the private key.
 */
#include "hibus/tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "hibus/alloc.h"

#define TLS_MAX_CHAIN 16
#define TLS_MAX_FILE (1024 * 1024)

struct tls_creds {
    atomic_int refs;
    gnutls_pcert_st pcert[TLS_MAX_CHAIN];
    unsigned n_pcert;
    gnutls_privkey_t key;
    time_t expires;
    char subject[256];
};

/* Reads a whole regular file of at most TLS_MAX_FILE bytes; false with why set. */
static bool read_file(const char *what, const char *path, gnutls_datum_t *out, char *why,
                      size_t whylen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > TLS_MAX_FILE) {
        const char *reason = f == NULL                   ? strerror(errno)
                             : !S_ISREG(st.st_mode)      ? "not a regular file"
                             : st.st_size > TLS_MAX_FILE ? "larger than 1 MiB"
                                                         : strerror(errno);
        snprintf(why, whylen, "cannot read the %s %s: %s", what, path, reason);
        if (f != NULL)
            fclose(f);
        return false;
    }
    out->data = hibus_xmalloc((size_t)st.st_size + 1);
    size_t n = fread(out->data, 1, (size_t)st.st_size, f);
    bool ok = !ferror(f);
    fclose(f);
    if (!ok) {
        snprintf(why, whylen, "cannot read the %s %s: read error", what, path);
        free(out->data);
        out->data = NULL;
        return false;
    }
    out->data[n] = '\0';
    out->size = (unsigned)n;
    return true;
}

static void fmt_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void creds_free(struct tls_creds *c)
{
    for (unsigned i = 0; i < c->n_pcert; i++)
        gnutls_pcert_deinit(&c->pcert[i]);
    if (c->key != NULL)
        gnutls_privkey_deinit(c->key);
    free(c);
}

/* The SHA-256 id of the public key of the certificate, or of the private key. */
static bool key_id_of_cert(const gnutls_pcert_st *p, unsigned char id[32])
{
    size_t len = 32;
    return gnutls_pubkey_get_key_id(p->pubkey, GNUTLS_KEYID_USE_SHA256, id, &len) == 0 && len == 32;
}

static bool key_id_of_key(gnutls_privkey_t key, unsigned char id[32])
{
    gnutls_pubkey_t pub;
    if (gnutls_pubkey_init(&pub) != 0)
        return false;
    size_t len = 32;
    bool ok = gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
              gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &len) == 0 && len == 32;
    gnutls_pubkey_deinit(pub);
    return ok;
}

/* Validity and subject of the server certificate (the first in the file). */
static bool check_validity(struct tls_creds *c, const char *cert_path, char *why, size_t whylen)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != 0) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    bool ok = false;
    if (gnutls_x509_crt_import(crt, &c->pcert[0].cert, GNUTLS_X509_FMT_DER) != 0) {
        snprintf(why, whylen, "the certificate in %s cannot be decoded", cert_path);
        goto out;
    }
    size_t slen = sizeof c->subject;
    if (gnutls_x509_crt_get_dn(crt, c->subject, &slen) != 0)
        snprintf(c->subject, sizeof c->subject, "(no subject)");
    time_t now = time(NULL), from = gnutls_x509_crt_get_activation_time(crt);
    c->expires = gnutls_x509_crt_get_expiration_time(crt);
    char when[32];
    if (c->expires != (time_t)-1 && now > c->expires) {
        fmt_time(c->expires, when);
        snprintf(why, whylen,
                 "the certificate in %s (%s) expired on %s: renew it and reload (SIGHUP)",
                 cert_path, c->subject, when);
        goto out;
    }
    if (from != (time_t)-1 && now < from) {
        fmt_time(from, when);
        snprintf(why, whylen,
                 "the certificate in %s (%s) is not valid before %s: check the clock, or "
                 "the certificate's dates",
                 cert_path, c->subject, when);
        goto out;
    }
    ok = true;
out:
    gnutls_x509_crt_deinit(crt);
    return ok;
}

enum hibus_err tls_creds_load(const char *cert_path, const char *key_path, struct tls_creds **out,
                              char *why, size_t whylen)
{
    *out = NULL;
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
    if (!read_file("certificate", cert_path, &cert, why, whylen))
        return HIBUS_E_IO;
    if (!read_file("private key", key_path, &key, why, whylen)) {
        free(cert.data);
        return HIBUS_E_IO;
    }
    enum hibus_err rc = HIBUS_E_CONFIG;
    struct tls_creds *c = hibus_xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);

    unsigned n = TLS_MAX_CHAIN;
    int g = strstr((const char *)cert.data, "-----BEGIN CERTIFICATE-----") == NULL
                ? GNUTLS_E_BASE64_DECODING_ERROR
                : gnutls_pcert_list_import_x509_raw(c->pcert, &n, &cert, GNUTLS_X509_FMT_PEM,
                                                    GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (g < 0) {
        snprintf(why, whylen,
                 g == GNUTLS_E_BASE64_DECODING_ERROR
                     ? "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the "
                       "server certificate, then its chain, in PEM"
                 : g == GNUTLS_E_SHORT_MEMORY_BUFFER
                     ? "%s holds more than 16 certificates: give the server certificate and "
                       "its chain only"
                     : "%s is not a usable certificate chain in PEM (%s): the server "
                       "certificate comes first, each next one signs the one before",
                 cert_path, gnutls_strerror(g));
        goto fail;
    }
    c->n_pcert = n;
    if (gnutls_privkey_init(&c->key) != 0) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    g = gnutls_privkey_import_x509_raw(c->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g < 0) {
        snprintf(why, whylen,
                 strstr((const char *)key.data, "ENCRYPTED") != NULL
                     ? "the private key in %s is encrypted (%s): hibus needs it unencrypted, "
                       "readable only by its user"
                     : "%s holds no PEM private key (%s): give the key of the certificate, "
                       "unencrypted, in PEM (PKCS#8, PKCS#1 or SEC1)",
                 key_path, gnutls_strerror(g));
        goto fail;
    }
    unsigned char a[32], b[32];
    if (!key_id_of_cert(&c->pcert[0], a) || !key_id_of_key(c->key, b)) {
        snprintf(why, whylen, "the key ids of %s and %s cannot be computed", cert_path, key_path);
        goto fail;
    }
    if (memcmp(a, b, sizeof a) != 0) {
        snprintf(why, whylen,
                 "the private key in %s does not match the certificate in %s: give the key "
                 "the certificate was issued for (the first certificate in the file is the "
                 "server's)",
                 key_path, cert_path);
        goto fail;
    }
    if (!check_validity(c, cert_path, why, whylen))
        goto fail;
    rc = HIBUS_OK;
    *out = c;
    c = NULL;
fail:
    if (c != NULL)
        creds_free(c);
    gnutls_memset(key.data, 0, key.size);
    free(key.data);
    free(cert.data);
    return rc;
}

struct tls_creds *tls_creds_ref(struct tls_creds *c)
{
    if (c != NULL)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void tls_creds_unref(struct tls_creds *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
        creds_free(c);
}

time_t tls_creds_expires(const struct tls_creds *c)
{
    return c->expires;
}

const char *tls_creds_subject(const struct tls_creds *c)
{
    return c->subject;
}

void tls_creds_get(const struct tls_creds *c, gnutls_pcert_st **pcert, unsigned *n,
                   gnutls_privkey_t *key)
{
    *pcert = (gnutls_pcert_st *)(uintptr_t)c->pcert;
    *n = c->n_pcert;
    *key = c->key;
}

bool tls_ca_file_check(const char *path, char *why, size_t whylen)
{
    gnutls_datum_t data = {NULL, 0};
    if (!read_file("CA file", path, &data, why, whylen))
        return false;
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int g = gnutls_x509_crt_list_import2(&crts, &n, &data, GNUTLS_X509_FMT_PEM, 0);
    free(data.data);
    if (g < 0 || n == 0) {
        snprintf(why, whylen,
                 "%s holds no PEM certificate (%s): give the CA certificates "
                 "that sign the target's certificate, in PEM",
                 path, g < 0 ? gnutls_strerror(g) : "none found");
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return true;
}

bool tls_peer_certificate(gnutls_session_t s, unsigned char sha256[32], char *subject,
                          size_t subject_len, bool *verified)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    *verified = false;
    subject[0] = '\0';
    if (certs == NULL || n == 0)
        return false;
    size_t len = 32;
    if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], sha256, &len) != 0 || len != 32)
        return false;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) == 0) {
        size_t slen = subject_len;
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) != 0 ||
            gnutls_x509_crt_get_dn(crt, subject, &slen) != 0)
            subject[0] = '\0';
        gnutls_x509_crt_deinit(crt);
    }
    unsigned status = 0;
    *verified = gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
    return true;
}

char *tls_read_pem(const char *path, char *why, size_t whylen)
{
    gnutls_datum_t d = {NULL, 0};
    if (!read_file("CA file", path, &d, why, whylen))
        return NULL;
    return (char *)d.data;
}
