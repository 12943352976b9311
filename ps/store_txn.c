/* store_txn.c -- the psf_store_txn_* calls (store.h): reads and writes inside the
 * transaction psf_store_update or psf_store_read runs a callback in, on the
 * uint64-keyed databases, meta and pushlog. The environment, the transactions
 * themselves and map growth are store.c's. */
#include <stdint.h>
#include <string.h>

#include "lib/base/log.h"
#include "ps/store_internal.h"

#define KEY_LEN 8
#define NAME_MAX_LEN 400

static void
key_enc(uint64_t key, unsigned char buf[KEY_LEN])
{
	for (int i = 0; i < KEY_LEN; i++)
		buf[i] = (unsigned char)(key >> (56 - 8 * i));
}

static uint64_t
key_dec(const void *p)
{
	const unsigned char *b = p;
	uint64_t key = 0;

	for (int i = 0; i < KEY_LEN; i++)
		key = (key << 8) | b[i];
	return key;
}

/* ---- transaction helpers --------------------------------------------------- */

/* txn_check validates a call on txn against database index dbi. */
static psf_err
txn_check(const psf_store_txn *txn, int dbi, bool is_write)
{
	if (txn == NULL || dbi < 0 || dbi >= N_ALL_DBS)
		return PSF_EINVAL;
	if (is_write && !txn->t_is_write) {
		psf_log_err(TAG, "write to %s inside a read transaction", store_db_names[dbi]);
		return PSF_EINVAL;
	}
	if (txn->t_map_full)
		return PSF_ENOSPC; /* the txn is dead; the caller should bail out */
	return PSF_OK;
}

psf_err
store_txn_rc(psf_store_txn *txn, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		txn->t_map_full = true;
	return psf_err_from_mdb(rc, what);
}

static psf_err
val_get(psf_store_txn *txn, int dbi, MDB_val *k, const void **data_out, size_t *len_out)
{
	MDB_val v;
	int rc;

	rc = mdb_get(txn->t_txn, txn->t_st->st_dbi[dbi], k, &v);
	if (rc != MDB_SUCCESS)
		return store_txn_rc(txn, rc, "get");
	*data_out = v.mv_data;
	*len_out = v.mv_size;
	return PSF_OK;
}

static psf_err
val_reserve(psf_store_txn *txn, int dbi, MDB_val *k, size_t len, void **buf_out)
{
	MDB_val v = {len, NULL};
	int rc;

	rc = mdb_put(txn->t_txn, txn->t_st->st_dbi[dbi], k, &v, MDB_RESERVE);
	if (rc != MDB_SUCCESS)
		return store_txn_rc(txn, rc, "put");
	*buf_out = v.mv_data;
	return txn->t_cap == NULL ? PSF_OK : store_cap_note(txn, 'P', dbi, k);
}

static psf_err
val_del(psf_store_txn *txn, int dbi, MDB_val *k)
{
	psf_err rv;

	rv = store_txn_rc(txn, mdb_del(txn->t_txn, txn->t_st->st_dbi[dbi], k, NULL), "del");
	return rv != PSF_OK || txn->t_cap == NULL ? rv : store_cap_note(txn, 'D', dbi, k);
}

/* name_val checks a meta name or worker id and points k at its bytes. */
static psf_err
name_val(const char *name, MDB_val *k)
{
	size_t len;

	if (name == NULL)
		return PSF_EINVAL;
	len = strnlen(name, NAME_MAX_LEN + 1);
	if (len == 0 || len > NAME_MAX_LEN)
		return PSF_EINVAL;
	k->mv_size = len;
	k->mv_data = (void *)name;
	return PSF_OK;
}

/* ---- psf_store_txn_*: uint64-keyed databases --------------------------------- */

psf_err
psf_store_txn_get(psf_store_txn *txn, psf_store_db db, uint64_t key, const void **data_out,
    size_t *len_out)
{
	unsigned char kb[KEY_LEN];
	MDB_val k = {KEY_LEN, kb};
	psf_err rv;

	if ((unsigned)db >= PSF_STORE_N_DBS || data_out == NULL || len_out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, false)) != PSF_OK)
		return rv;
	key_enc(key, kb);
	return val_get(txn, (int)db, &k, data_out, len_out);
}

psf_err
psf_store_txn_get_floats(psf_store_txn *txn, psf_store_db db, uint64_t key, float *dst, size_t n)
{
	const void *data = NULL;
	size_t len = 0;
	psf_err rv;

	if ((dst == NULL && n > 0) || n > SIZE_MAX / sizeof(float))
		return PSF_EINVAL;
	if ((rv = psf_store_txn_get(txn, db, key, &data, &len)) != PSF_OK)
		return rv;
	if (len != n * sizeof(float))
		return PSF_ERANGE;
	if (len > 0)
		memcpy(dst, data, len);
	return PSF_OK;
}

psf_err
psf_store_txn_put_reserve(psf_store_txn *txn, psf_store_db db, uint64_t key, size_t len,
    void **buf_out)
{
	unsigned char kb[KEY_LEN];
	MDB_val k = {KEY_LEN, kb};
	psf_err rv;

	if ((unsigned)db >= PSF_STORE_N_DBS || buf_out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, true)) != PSF_OK)
		return rv;
	key_enc(key, kb);
	return val_reserve(txn, (int)db, &k, len, buf_out);
}

psf_err
psf_store_txn_rewrite(psf_store_txn *txn, psf_store_db db, uint64_t key, size_t len,
    const void **old_out, void **new_out)
{
	unsigned char kb[KEY_LEN];
	MDB_val k = {KEY_LEN, kb};
	unsigned int flags = 0;
	const void *old = NULL;
	size_t old_len = 0;
	psf_err rv;

	if ((unsigned)db >= PSF_STORE_N_DBS || old_out == NULL || new_out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, true)) != PSF_OK)
		return rv;
	key_enc(key, kb);
	if ((rv = val_get(txn, (int)db, &k, &old, &old_len)) != PSF_OK)
		return rv;
	if (old_len != len)
		return PSF_ERANGE;
	/* Without MDB_WRITEMAP, LMDB keeps the pages written in this txn in
	 * malloc'd memory and may spill them (write out, free) during a put, and
	 * a small value shares its page with other keys, which may have been
	 * written: *old could then move under the caller. With MDB_WRITEMAP every
	 * page stays where it is in the map until the commit. */
	if (mdb_env_get_flags(txn->t_st->st_env, &flags) != MDB_SUCCESS || !(flags & MDB_WRITEMAP))
		return PSF_ESTATE;
	if ((rv = val_reserve(txn, (int)db, &k, len, new_out)) != PSF_OK)
		return rv;
	*old_out = old;
	return PSF_OK;
}

psf_err
psf_store_txn_put(psf_store_txn *txn, psf_store_db db, uint64_t key, const void *data, size_t len)
{
	void *buf = NULL;
	psf_err rv;

	if (data == NULL && len > 0)
		return PSF_EINVAL;
	if ((rv = psf_store_txn_put_reserve(txn, db, key, len, &buf)) != PSF_OK)
		return rv;
	if (len > 0)
		memcpy(buf, data, len);
	return PSF_OK;
}

psf_err
psf_store_txn_put_floats(psf_store_txn *txn, psf_store_db db, uint64_t key, const float *src,
    size_t n)
{
	if (n > SIZE_MAX / sizeof(float))
		return PSF_EINVAL;
	return psf_store_txn_put(txn, db, key, src, n * sizeof(float));
}

psf_err
psf_store_txn_del(psf_store_txn *txn, psf_store_db db, uint64_t key)
{
	unsigned char kb[KEY_LEN];
	MDB_val k = {KEY_LEN, kb};
	psf_err rv;

	if ((unsigned)db >= PSF_STORE_N_DBS)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, true)) != PSF_OK)
		return rv;
	key_enc(key, kb);
	return val_del(txn, (int)db, &k);
}

psf_err
psf_store_txn_clear(psf_store_txn *txn, psf_store_db db)
{
	psf_err rv;

	if ((unsigned)db >= PSF_STORE_N_DBS)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, true)) != PSF_OK)
		return rv;
	rv = store_txn_rc(txn, mdb_drop(txn->t_txn, txn->t_st->st_dbi[db], 0), "clear");
	return rv != PSF_OK || txn->t_cap == NULL ? rv : store_cap_note(txn, 'C', (int)db, NULL);
}

psf_err
psf_store_txn_clear_all(psf_store_txn *txn)
{
	psf_err rv;

	for (int i = 0; i < N_ALL_DBS; i++) {
		if ((rv = txn_check(txn, i, true)) != PSF_OK)
			return rv;
		rv = store_txn_rc(txn, mdb_drop(txn->t_txn, txn->t_st->st_dbi[i], 0), "clear");
		if (rv != PSF_OK)
			return rv;
	}
	return txn->t_cap == NULL ? PSF_OK : store_cap_note(txn, 'A', 0, NULL);
}

psf_err
store_db_count(psf_store_txn *txn, int dbi, uint64_t *n_out)
{
	MDB_stat ms;
	int rc;

	rc = mdb_stat(txn->t_txn, txn->t_st->st_dbi[dbi], &ms);
	if (rc != MDB_SUCCESS)
		return store_txn_rc(txn, rc, "stat");
	*n_out = ms.ms_entries;
	return PSF_OK;
}

psf_err
psf_store_txn_count(psf_store_txn *txn, psf_store_db db, uint64_t *n_out)
{
	psf_err rv;

	if ((unsigned)db >= PSF_STORE_N_DBS || n_out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, false)) != PSF_OK)
		return rv;
	return store_db_count(txn, (int)db, n_out);
}

/* walk_cursor runs the walk loop on an open cursor; see psf_store_txn_walk. */
static psf_err
walk_cursor(MDB_cursor *cur, uint64_t start_key, size_t max_bytes, psf_store_visit_fn visit,
    void *arg, psf_store_walk *w)
{
	unsigned char kb[KEY_LEN];
	MDB_val k = {KEY_LEN, kb}, v;
	psf_err rv;
	int rc;

	key_enc(start_key, kb);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t key;
		size_t cost = v.mv_size + KEY_LEN;

		if (k.mv_size != KEY_LEN) {
			psf_log_err(TAG, "walk: key of %zu bytes in a uint64 database", k.mv_size);
			return PSF_ESTORE;
		}
		key = key_dec(k.mv_data);
		if (max_bytes > 0 && w->n_keys > 0 && w->n_bytes + cost > max_bytes) {
			w->next_key = key;
			return PSF_OK;
		}
		if ((rv = visit(key, v.mv_data, v.mv_size, arg)) != PSF_OK)
			return rv;
		w->n_keys++;
		w->n_bytes += cost;
	}
	if (rc != MDB_NOTFOUND)
		return psf_err_from_mdb(rc, "walk");
	w->done = true;
	return PSF_OK;
}

psf_err
psf_store_txn_walk(psf_store_txn *txn, psf_store_db db, uint64_t start_key, size_t max_bytes,
    psf_store_visit_fn visit, void *arg, psf_store_walk *out)
{
	psf_store_walk w = {0};
	MDB_cursor *cur;
	psf_err rv;
	int rc;

	if ((unsigned)db >= PSF_STORE_N_DBS || visit == NULL || out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, (int)db, false)) != PSF_OK)
		return rv;
	rc = mdb_cursor_open(txn->t_txn, txn->t_st->st_dbi[db], &cur);
	if (rc != MDB_SUCCESS)
		return store_txn_rc(txn, rc, "cursor open");
	rv = walk_cursor(cur, start_key, max_bytes, visit, arg, &w);
	mdb_cursor_close(cur);
	if (rv == PSF_OK)
		*out = w;
	return rv;
}

/* ---- meta and pushlog ------------------------------------------------------- */

psf_err
psf_store_txn_meta_get(psf_store_txn *txn, const char *name, const void **data_out, size_t *len_out)
{
	MDB_val k;
	psf_err rv;

	if (data_out == NULL || len_out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, DB_META, false)) != PSF_OK || (rv = name_val(name, &k)) != PSF_OK)
		return rv;
	return val_get(txn, DB_META, &k, data_out, len_out);
}

psf_err
psf_store_txn_meta_put(psf_store_txn *txn, const char *name, const void *data, size_t len)
{
	MDB_val k;
	void *buf = NULL;
	psf_err rv;

	if (data == NULL && len > 0)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, DB_META, true)) != PSF_OK || (rv = name_val(name, &k)) != PSF_OK ||
	    (rv = val_reserve(txn, DB_META, &k, len, &buf)) != PSF_OK)
		return rv;
	if (len > 0)
		memcpy(buf, data, len);
	return PSF_OK;
}

psf_err
psf_store_txn_meta_del(psf_store_txn *txn, const char *name)
{
	MDB_val k;
	psf_err rv;

	if ((rv = txn_check(txn, DB_META, true)) != PSF_OK || (rv = name_val(name, &k)) != PSF_OK)
		return rv;
	return val_del(txn, DB_META, &k);
}

static psf_err
meta_cursor(MDB_cursor *cur, MDB_val *prefix, psf_store_meta_fn fn, void *arg)
{
	char name[NAME_MAX_LEN + 1];
	MDB_val k = *prefix, v;
	psf_err rv;
	int rc;

	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < prefix->mv_size ||
		    memcmp(k.mv_data, prefix->mv_data, prefix->mv_size) != 0)
			return PSF_OK; /* sorted: past the last name with the prefix */
		if (k.mv_size > NAME_MAX_LEN) {
			psf_log_err(TAG, "meta: malformed record (%zu-byte name)", k.mv_size);
			return PSF_ESTORE;
		}
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		if ((rv = fn(name, v.mv_data, v.mv_size, arg)) != PSF_OK)
			return rv;
	}
	return rc == MDB_NOTFOUND ? PSF_OK : psf_err_from_mdb(rc, "meta walk");
}

psf_err
psf_store_txn_meta_foreach(psf_store_txn *txn, const char *prefix, psf_store_meta_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k;
	psf_err rv;
	int rc;

	if (fn == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, DB_META, false)) != PSF_OK ||
	    (rv = name_val(prefix, &k)) != PSF_OK)
		return rv;
	rc = mdb_cursor_open(txn->t_txn, txn->t_st->st_dbi[DB_META], &cur);
	if (rc != MDB_SUCCESS)
		return store_txn_rc(txn, rc, "cursor open");
	rv = meta_cursor(cur, &k, fn, arg);
	mdb_cursor_close(cur);
	return rv;
}

psf_err
psf_store_txn_meta_get_u64(psf_store_txn *txn, const char *name, uint64_t *out)
{
	const void *data = NULL;
	size_t len = 0;
	psf_err rv;

	if (out == NULL)
		return PSF_EINVAL;
	if ((rv = psf_store_txn_meta_get(txn, name, &data, &len)) != PSF_OK)
		return rv;
	if (len != KEY_LEN)
		return PSF_ERANGE;
	*out = key_dec(data);
	return PSF_OK;
}

psf_err
psf_store_txn_meta_put_u64(psf_store_txn *txn, const char *name, uint64_t value)
{
	unsigned char b[KEY_LEN];

	key_enc(value, b);
	return psf_store_txn_meta_put(txn, name, b, sizeof(b));
}

psf_err
psf_store_txn_pushlog_get(psf_store_txn *txn, const char *worker, uint64_t *seq_out)
{
	MDB_val k;
	const void *data = NULL;
	size_t len = 0;
	psf_err rv;

	if (seq_out == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, DB_PUSHLOG, false)) != PSF_OK ||
	    (rv = name_val(worker, &k)) != PSF_OK ||
	    (rv = val_get(txn, DB_PUSHLOG, &k, &data, &len)) != PSF_OK)
		return rv;
	if (len != KEY_LEN) {
		psf_log_err(TAG, "pushlog: %zu-byte seq for worker %s", len, worker);
		return PSF_ESTORE;
	}
	*seq_out = key_dec(data);
	return PSF_OK;
}

psf_err
psf_store_txn_pushlog_put(psf_store_txn *txn, const char *worker, uint64_t seq)
{
	MDB_val k;
	void *buf = NULL;
	psf_err rv;

	if ((rv = txn_check(txn, DB_PUSHLOG, true)) != PSF_OK ||
	    (rv = name_val(worker, &k)) != PSF_OK ||
	    (rv = val_reserve(txn, DB_PUSHLOG, &k, KEY_LEN, &buf)) != PSF_OK)
		return rv;
	key_enc(seq, buf);
	return PSF_OK;
}

static psf_err
pushlog_cursor(MDB_cursor *cur, psf_store_pushlog_fn fn, void *arg)
{
	char worker[NAME_MAX_LEN + 1];
	MDB_val k, v;
	psf_err rv;
	int rc;

	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size == 0 || k.mv_size > NAME_MAX_LEN || v.mv_size != KEY_LEN) {
			psf_log_err(TAG, "pushlog: malformed record (%zu-byte id, %zu-byte seq)",
			    k.mv_size, v.mv_size);
			return PSF_ESTORE;
		}
		memcpy(worker, k.mv_data, k.mv_size);
		worker[k.mv_size] = '\0';
		if ((rv = fn(worker, key_dec(v.mv_data), arg)) != PSF_OK)
			return rv;
	}
	return rc == MDB_NOTFOUND ? PSF_OK : psf_err_from_mdb(rc, "pushlog walk");
}

psf_err
psf_store_txn_pushlog_foreach(psf_store_txn *txn, psf_store_pushlog_fn fn, void *arg)
{
	MDB_cursor *cur;
	psf_err rv;
	int rc;

	if (fn == NULL)
		return PSF_EINVAL;
	if ((rv = txn_check(txn, DB_PUSHLOG, false)) != PSF_OK)
		return rv;
	rc = mdb_cursor_open(txn->t_txn, txn->t_st->st_dbi[DB_PUSHLOG], &cur);
	if (rc != MDB_SUCCESS)
		return store_txn_rc(txn, rc, "cursor open");
	rv = pushlog_cursor(cur, fn, arg);
	mdb_cursor_close(cur);
	return rv;
}
