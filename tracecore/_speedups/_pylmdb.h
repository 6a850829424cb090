/* The object layouts of py-lmdb 3.0.0's CPython binding (lmdb/cpython.c, lmdb/mdb_api.h of the
 * sdist on PyPI), as far as tracecore._speedups._mdb reads them: a Transaction's MDB_txn
 * pointer, flags and mutation count and its engine's function table, a _Database's MDB_dbi.
 * Built without memsink (HAVE_MEMSINK adds a field before the txn pointer), as the PyPI wheels
 * are.
 *
 * Nothing here is trusted before _mdb's self-check has compared what it reads through these
 * layouts with what py-lmdb answers (version, txn id, path, database flags); a py-lmdb of
 * another version is never read this way. The LMDB types are declared here, not taken from
 * lmdb.h: the engine that runs is py-lmdb's own (0.9 or 1.0, chosen per environment), and on
 * the builds py-lmdb makes (no MDB_VL32) MDB_val and the functions below are alike in both.
 */
#ifndef PHARMATRACE_PYLMDB_H
#define PHARMATRACE_PYLMDB_H

#include <Python.h>
#include <stddef.h>

typedef struct { size_t mv_size; void *mv_data; } PT_val;     /* MDB_val */
typedef struct PT_txn PT_txn;                                   /* MDB_txn, opaque */
typedef struct PT_cursor PT_cursor;                             /* MDB_cursor, opaque */
typedef struct PT_env PT_env;                                   /* MDB_env, opaque */
typedef unsigned int PT_dbi;                                    /* MDB_dbi */

#define PT_NOTFOUND (-30798)                                    /* MDB_NOTFOUND */
#define PT_SET 15                                               /* MDB_SET */
#define PT_CURRENT 0x40                                         /* MDB_CURRENT */
#define PT_TRANS_RDONLY 2                    /* py-lmdb's trans_flags: a read-only transaction */
#define PT_FLAG_BITS 0x3e   /* MDB_REVERSEKEY|MDB_DUPSORT|MDB_INTEGERKEY|MDB_DUPFIXED|MDB_INTEGERDUP */
#define PT_DUPSORT 0x04

/* struct MdbApi (lmdb/mdb_api.h): one table per engine; the entries not called are void *. */
typedef struct {
    int major;
    int minor;
    int patch;
    unsigned int data_version;
    void *env_create, *env_open, *env_close, *env_copy2, *env_copyfd2, *env_copy3,
         *env_copyfd3, *env_sync, *env_stat, *env_info, *env_get_flags, *env_set_flags,
         *env_get_maxkeysize, *env_get_maxreaders;
    int (*env_get_path)(PT_env *env, const char **path);
    void *env_set_mapsize, *env_set_maxdbs, *env_set_maxreaders, *reader_check, *reader_list;
    void *txn_begin, *txn_commit, *txn_abort, *txn_reset, *txn_renew;
    size_t (*txn_id)(PT_txn *txn);
    void *dbi_open;
    int (*dbi_flags)(PT_txn *txn, PT_dbi dbi, unsigned int *flags);
    void *dbi_close, *drop;
    int (*get)(PT_txn *txn, PT_dbi dbi, PT_val *key, PT_val *data);
    void *put, *del, *stat;
    int (*cursor_open)(PT_txn *txn, PT_dbi dbi, PT_cursor **cursor);
    void (*cursor_close)(PT_cursor *cursor);
    int (*cursor_get)(PT_cursor *cursor, PT_val *key, PT_val *data, int op);
    int (*cursor_put)(PT_cursor *cursor, PT_val *key, PT_val *data, unsigned int flags);
    void *cursor_del, *cursor_count;
    char *(*strerror_fn)(int err);
    char *(*version_fn)(int *major, int *minor, int *patch);
} PT_api;

/* LmdbObject_HEAD */
struct PT_list_head { void *prev; void *next; };
#define PT_OBJECT_HEAD \
    PyObject_HEAD \
    struct PT_list_head siblings; \
    struct PT_list_head children; \
    int valid;

typedef struct PT_envobj PT_envobj;

/* struct DbObject: lmdb._Database */
typedef struct {
    PT_OBJECT_HEAD
    PT_envobj *env;
    PT_dbi dbi;
    unsigned int flags;
} PT_dbobj;

/* struct EnvObject: lmdb.Environment, its first fields */
struct PT_envobj {
    PT_OBJECT_HEAD
    PyObject *weaklist;
    PT_env *env;
    const PT_api *libv;
};

/* struct TransObject: lmdb.Transaction */
typedef struct {
    PT_OBJECT_HEAD
    PyObject *weaklist;
    PT_envobj *env;
    void *parent;
    const PT_api *libv;
    PT_txn *txn;
    int flags;
    PT_dbobj *db;
    int mutations;      /* bumped by every write, so that py-lmdb's cursors look again */
} PT_transobj;

#endif
