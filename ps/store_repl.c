/* store_repl.c -- the store half of replication (store.h): writeset capture on
 * a primary, apply on a backup, and the streamed copy plus install a joining
 * node catches up with.
 *
 * Capture. While capture is on, every write call of an update txn (store_txn.c)
 * records (code, db, key) here; values are not copied then, because pointers
 * from put_reserve/rewrite are filled by the caller after the call and a small
 * value may move within its page on a later write. Just before the commit,
 * store_cap_finish reads each recorded key again in the txn and writes the
 * writeset: a 'P' op with the value the key has at commit, or a 'D' op when
 * the key is absent by then; 'D', 'C' and 'A' go as they are.
 *
 * Why replaying the writeset in order on the pre-txn state S gives exactly the
 * primary's committed state F. Take any (db, key). The replayed ops that can
 * touch it are the ones at the same positions as the primary's ops that
 * touched it: writes of that key, clears of db, clear_all. After a replay the
 * key holds whatever the LAST of them left:
 *   - none: neither side touched it, it keeps S's value on both, which is F's;
 *   - a put/reserve/rewrite: the op carries F[key] (or is a delete when F has
 *     no key), so the key ends as in F;
 *   - a delete, clear or clear_all: on the primary nothing wrote the key after
 *     it, so F has no key, and the replayed op removes it too (a replayed
 *     delete of an absent key is not an error).
 * Earlier ops may write values that never existed on the primary (a later
 * final value early), but the last op overrides them. Two cheap reductions keep
 * this true: a write of the same key as the op just before replaces that op,
 * and a clear drops every earlier op of its db (clear_all: every op), since in
 * both cases the dropped ops are not the last for any key.
 *
 * repl_seq is read when the txn begins and written as the txn's last op (so a
 * clear_all in the txn cannot reset it); it travels in the writeset, and apply
 * sets it again from the seq it was asked to apply. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "ps/store_internal.h"

#define WS_MAGIC "PSW1"
#define WS_MAGIC_LEN 4
#define WS_HDR_LEN 8 /* magic, then the op count (u32), so a cut is always seen */
#define KEY_LEN 8
#define NAME_MAX_LEN 400
#define SEQ_NAME "repl_seq"
#define INSTALL_NAME "repl_install"
#define DEFAULT_PIECE_BYTES ((size_t)1 << 20)

/* ---- buffers --------------------------------------------------------------- */

/* grow makes room for need more bytes of elem-byte items in *buf. */
static psf_err
grow(void **buf, size_t *cap, size_t used, size_t need, size_t elem)
{
	size_t n = *cap == 0 ? 64 : *cap;
	void *p;

	if (used + need <= *cap)
		return PSF_OK;
	if (need > SIZE_MAX / elem / 4 - used)
		return PSF_ENOMEM;
	while (n < used + need)
		n *= 2;
	if ((p = realloc(*buf, n * elem)) == NULL)
		return PSF_ENOMEM;
	*buf = p;
	*cap = n;
	return PSF_OK;
}

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* out_op appends one op to *out (growing it): code, db, and for 'P'/'D' the key
 * and for 'P' the value. */
static psf_err
out_op(unsigned char **out, size_t *n, size_t *cap, int code, int dbi, const MDB_val *k,
    const MDB_val *v)
{
	size_t need = 2 + (k != NULL ? 2 + k->mv_size : 0) + (v != NULL ? 4 + v->mv_size : 0);
	unsigned char *p;
	psf_err rv;

	if (v != NULL && v->mv_size > UINT32_MAX) {
		psf_log_err(TAG, "writeset: a %zu-byte value does not fit the format", v->mv_size);
		return PSF_ERANGE;
	}
	if ((rv = grow((void **)out, cap, *n, need, 1)) != PSF_OK)
		return rv;
	p = *out + *n;
	*p++ = (unsigned char)code;
	*p++ = (unsigned char)dbi;
	if (k != NULL) {
		put_be(p, k->mv_size, 2);
		memcpy(p + 2, k->mv_data, k->mv_size);
		p += 2 + k->mv_size;
	}
	if (v != NULL) {
		put_be(p, v->mv_size, 4);
		if (v->mv_size > 0)
			memcpy(p + 4, v->mv_data, v->mv_size);
	}
	*n += need;
	return PSF_OK;
}

/* ---- capture ---------------------------------------------------------------- */

void
psf_store_set_capture(psf_store *st, psf_store_capture_fn fn, void *arg)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->st_write_mu);
	st->st_cap_fn = fn;
	st->st_cap_arg = fn != NULL ? arg : NULL;
	pthread_mutex_unlock(&st->st_write_mu);
}

void
store_cap_free(store_cap *cap)
{
	free(cap->ops);
	free(cap->keys);
	free(cap->out);
	memset(cap, 0, sizeof(*cap));
}

psf_err
store_cap_note(psf_store_txn *txn, int code, int dbi, const MDB_val *k)
{
	store_cap *c = txn->t_cap;
	store_cap_op *last = c->n_ops > 0 ? &c->ops[c->n_ops - 1] : NULL;
	size_t j = 0;
	psf_err rv;

	if (code == 'A') {
		c->n_ops = c->n_keys = 0;
	} else if (code == 'C') {
		for (size_t i = 0; i < c->n_ops; i++)
			if (c->ops[i].dbi != dbi)
				c->ops[j++] = c->ops[i];
		c->n_ops = j;
	} else if (last != NULL && last->dbi == dbi && last->klen == k->mv_size &&
	    (last->code == 'P' || last->code == 'D') &&
	    memcmp(c->keys + last->koff, k->mv_data, k->mv_size) == 0) {
		last->code = (uint8_t)code; /* the same key again: only this write counts */
		return PSF_OK;
	}
	if ((rv = grow((void **)&c->ops, &c->cap_ops, c->n_ops, 1, sizeof(*c->ops))) != PSF_OK)
		return rv;
	c->ops[c->n_ops] = (store_cap_op){(uint8_t)code, (uint8_t)dbi, 0, 0};
	if (k != NULL) {
		if (k->mv_size > UINT16_MAX || c->n_keys + k->mv_size > UINT32_MAX)
			return PSF_ENOMEM;
		if ((rv = grow((void **)&c->keys, &c->cap_keys, c->n_keys, k->mv_size, 1)) !=
		    PSF_OK)
			return rv;
		memcpy(c->keys + c->n_keys, k->mv_data, k->mv_size);
		c->ops[c->n_ops].klen = (uint16_t)k->mv_size;
		c->ops[c->n_ops].koff = (uint32_t)c->n_keys;
		c->n_keys += k->mv_size;
	}
	c->n_ops++;
	return PSF_OK;
}

/* seq_get reads repl_seq in txn (absent = 0). */
static psf_err
seq_get(psf_store_txn *txn, uint64_t *seq)
{
	psf_err rv = psf_store_txn_meta_get_u64(txn, SEQ_NAME, seq);

	if (rv == PSF_ENOENT) {
		*seq = 0;
		return PSF_OK;
	}
	return rv;
}

psf_err
store_cap_begin(psf_store_txn *txn, uint64_t *seq)
{
	store_cap *c = &txn->t_st->st_cap;

	c->n_ops = c->n_keys = c->n_out = 0;
	txn->t_cap = c;
	return seq_get(txn, seq);
}

psf_err
store_cap_finish(psf_store_txn *txn, uint64_t seq)
{
	store_cap *c = txn->t_cap;
	psf_err rv;

	if ((rv = psf_store_txn_meta_put_u64(txn, SEQ_NAME, seq)) != PSF_OK)
		return rv;
	c->n_out = 0;
	if (c->n_ops > UINT32_MAX)
		return PSF_ERANGE;
	if ((rv = grow((void **)&c->out, &c->cap_out, 0, WS_HDR_LEN, 1)) != PSF_OK)
		return rv;
	memcpy(c->out, WS_MAGIC, WS_MAGIC_LEN);
	put_be(c->out + WS_MAGIC_LEN, c->n_ops, 4);
	c->n_out = WS_HDR_LEN;
	for (size_t i = 0; i < c->n_ops && rv == PSF_OK; i++) {
		const store_cap_op *op = &c->ops[i];
		MDB_val k = {op->klen, c->keys + op->koff}, v;
		int rc;

		if (op->code != 'P') {
			rv = out_op(&c->out, &c->n_out, &c->cap_out, op->code, op->dbi,
			    op->code == 'D' ? &k : NULL, NULL);
			continue;
		}
		rc = mdb_get(txn->t_txn, txn->t_st->st_dbi[op->dbi], &k, &v);
		if (rc == MDB_SUCCESS)
			rv = out_op(&c->out, &c->n_out, &c->cap_out, 'P', op->dbi, &k, &v);
		else if (rc == MDB_NOTFOUND) /* written, then deleted or cleared */
			rv = out_op(&c->out, &c->n_out, &c->cap_out, 'D', op->dbi, &k, NULL);
		else
			rv = store_txn_rc(txn, rc, "writeset read");
	}
	return rv;
}

/* ---- parsing and applying --------------------------------------------------- */

/* ws_op is one parsed op; ws_next parses the op at *pos. */
typedef struct ws_op {
	int code, dbi;
	MDB_val k, v;
} ws_op;

static psf_err
ws_next(const unsigned char *b, size_t len, size_t *pos, ws_op *op)
{
	size_t p = *pos;

	if (len - p < 2)
		return PSF_EPROTO;
	op->code = b[p];
	op->dbi = b[p + 1];
	p += 2;
	if (op->dbi >= N_ALL_DBS || (op->code == 'A' && op->dbi != 0) ||
	    (op->code == 'C' && op->dbi >= PSF_STORE_N_DBS)) /* meta/pushlog: no clear */
		return PSF_EPROTO;
	if (op->code == 'P' || op->code == 'D') {
		if (len - p < 2)
			return PSF_EPROTO;
		op->k.mv_size = get_be(b + p, 2);
		op->k.mv_data = (void *)(b + p + 2);
		p += 2;
		if (len - p < op->k.mv_size)
			return PSF_EPROTO;
		p += op->k.mv_size;
		if (op->dbi < PSF_STORE_N_DBS
		        ? op->k.mv_size != KEY_LEN
		        : op->k.mv_size == 0 || op->k.mv_size > NAME_MAX_LEN ||
		            memchr(op->k.mv_data, '\0', op->k.mv_size) != NULL)
			return PSF_EPROTO;
		if (op->dbi == DB_META && op->k.mv_size == strlen(INSTALL_NAME) &&
		    memcmp(op->k.mv_data, INSTALL_NAME, op->k.mv_size) == 0)
			return PSF_EPROTO; /* the install marker never travels */
	} else if (op->code != 'C' && op->code != 'A') {
		return PSF_EPROTO;
	}
	if (op->code == 'P') {
		if (len - p < 4)
			return PSF_EPROTO;
		op->v.mv_size = get_be(b + p, 4);
		op->v.mv_data = (void *)(b + p + 4);
		p += 4;
		if (len - p < op->v.mv_size || (op->dbi == DB_PUSHLOG && op->v.mv_size != KEY_LEN))
			return PSF_EPROTO;
		p += op->v.mv_size;
	}
	*pos = p;
	return PSF_OK;
}

/* ws_check parses the whole buffer; *n_puts gets the number of 'P' ops. With
 * puts_only, any other op is malformed (a copy piece). */
static psf_err
ws_check(const void *bytes, size_t len, bool puts_only, uint64_t *n_puts)
{
	size_t pos = WS_HDR_LEN;
	uint64_t n_ops = 0;
	ws_op op;
	psf_err rv;

	*n_puts = 0;
	if (bytes == NULL || len < WS_HDR_LEN || memcmp(bytes, WS_MAGIC, WS_MAGIC_LEN) != 0)
		return PSF_EPROTO;
	while (pos < len) {
		if ((rv = ws_next(bytes, len, &pos, &op)) != PSF_OK)
			return rv;
		if (puts_only && op.code != 'P')
			return PSF_EPROTO;
		*n_puts += op.code == 'P';
		n_ops++;
	}
	return n_ops == get_be((const unsigned char *)bytes + WS_MAGIC_LEN, 4) ? PSF_OK
	                                                                       : PSF_EPROTO;
}

/* ws_apply replays a buffer that ws_check accepted, in txn. */
static psf_err
ws_apply(psf_store_txn *txn, const unsigned char *b, size_t len)
{
	size_t pos = WS_HDR_LEN;
	MDB_txn *t = txn->t_txn;
	MDB_dbi *dbi = txn->t_st->st_dbi;
	psf_err rv = PSF_OK;
	ws_op op;

	while (pos < len && rv == PSF_OK) {
		int rc = MDB_SUCCESS;

		if ((rv = ws_next(b, len, &pos, &op)) != PSF_OK)
			return rv;
		switch (op.code) {
		case 'P': rc = mdb_put(t, dbi[op.dbi], &op.k, &op.v, 0); break;
		case 'D':
			rc = mdb_del(t, dbi[op.dbi], &op.k, NULL);
			rc = rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
			break;
		case 'C': rc = mdb_drop(t, dbi[op.dbi], 0); break;
		default:
			for (int i = 0; i < N_ALL_DBS && rc == MDB_SUCCESS; i++)
				rc = mdb_drop(t, dbi[i], 0);
		}
		rv = store_txn_rc(txn, rc, "apply");
	}
	return rv;
}

/* installing tells whether an install is incomplete (the marker is set). */
static psf_err
installing(psf_store_txn *txn, bool *yes, uint64_t *count)
{
	uint64_t n = 0;
	psf_err rv = psf_store_txn_meta_get_u64(txn, INSTALL_NAME, &n);

	*yes = rv == PSF_OK;
	if (count != NULL)
		*count = n;
	return rv == PSF_ENOENT ? PSF_OK : rv;
}

typedef struct seq_arg {
	uint64_t seq;
} seq_arg;

static psf_err
repl_seq_fn(psf_store_txn *txn, void *arg)
{
	seq_arg *a = arg;
	bool busy;
	psf_err rv;

	if ((rv = installing(txn, &busy, NULL)) != PSF_OK)
		return rv;
	return busy ? PSF_ESTATE : seq_get(txn, &a->seq);
}

psf_err
psf_store_repl_seq(psf_store *st, uint64_t *seq_out)
{
	seq_arg a = {0};
	psf_err rv;

	if (st == NULL || seq_out == NULL)
		return PSF_EINVAL;
	rv = psf_store_read(st, repl_seq_fn, &a);
	*seq_out = rv == PSF_OK ? a.seq : 0;
	return rv;
}

typedef struct apply_arg {
	uint64_t seq;
	const void *bytes;
	size_t len;
} apply_arg;

static psf_err
apply_fn(psf_store_txn *txn, void *arg)
{
	apply_arg *a = arg;
	uint64_t cur = 0;
	bool busy;
	psf_err rv;

	if ((rv = installing(txn, &busy, NULL)) != PSF_OK || (rv = seq_get(txn, &cur)) != PSF_OK)
		return rv;
	if (busy || cur != a->seq - 1)
		return PSF_ESTATE;
	if ((rv = ws_apply(txn, a->bytes, a->len)) != PSF_OK)
		return rv;
	return psf_store_txn_meta_put_u64(txn, SEQ_NAME, a->seq);
}

psf_err
psf_store_apply_wset(psf_store *st, uint64_t seq, const void *bytes, size_t len)
{
	apply_arg a = {seq, bytes, len};
	uint64_t n;
	psf_err rv;

	if (st == NULL || (bytes == NULL && len > 0))
		return PSF_EINVAL;
	if (seq == 0 || (rv = ws_check(bytes, len, false, &n)) != PSF_OK) {
		psf_log_warn(TAG, "apply: malformed writeset %" PRIu64 " (%zu bytes)", seq, len);
		return PSF_EPROTO;
	}
	return store_update(st, apply_fn, &a, false);
}

/* ---- streamed copy -------------------------------------------------------- */

typedef struct piece_buf {
	unsigned char *b;
	size_t n, cap, max;
	uint64_t in_piece;
	psf_store_piece_fn fn;
	void *arg;
	psf_store_copy_info info;
} piece_buf;

static psf_err
piece_flush(piece_buf *pb)
{
	psf_err rv;

	put_be(pb->b + WS_MAGIC_LEN, pb->in_piece, 4);
	rv = pb->fn(pb->info.seq, pb->b, pb->n, pb->arg);
	pb->info.pieces++;
	pb->info.bytes += pb->n;
	pb->n = WS_HDR_LEN;
	pb->in_piece = 0;
	return rv;
}

/* stream_db serialises every entry of database i, read in txn, into pieces. */
static psf_err
stream_db(psf_store *st, MDB_txn *txn, int i, piece_buf *pb)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	psf_err rv = PSF_OK;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->st_dbi[i], &cur)) != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "copy: cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS && rv == PSF_OK;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (i == DB_META && k.mv_size == strlen(INSTALL_NAME) &&
		    memcmp(k.mv_data, INSTALL_NAME, k.mv_size) == 0)
			continue; /* cannot be: checked before the walk */
		if (pb->in_piece > 0 &&
		    (pb->n + 8 + k.mv_size + v.mv_size > pb->max || pb->in_piece == UINT32_MAX) &&
		    (rv = piece_flush(pb)) != PSF_OK)
			break;
		if ((rv = out_op(&pb->b, &pb->n, &pb->cap, 'P', i, &k, &v)) != PSF_OK)
			break;
		pb->in_piece++;
		pb->info.entries++;
	}
	mdb_cursor_close(cur);
	if (rv == PSF_OK && rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
		rv = psf_err_from_mdb(rc, "copy: walk");
	return rv;
}

psf_err
psf_store_copy_stream(psf_store *st, size_t max_piece_bytes, psf_store_piece_fn fn, void *arg,
    psf_store_copy_info *info)
{
	piece_buf pb = {0};
	psf_store_txn t = {st, NULL, false, false, NULL};
	bool busy = false;
	psf_err rv;

	if (st == NULL || fn == NULL)
		return PSF_EINVAL;
	pb.max = max_piece_bytes == 0 ? DEFAULT_PIECE_BYTES : max_piece_bytes;
	pb.fn = fn;
	pb.arg = arg;
	if ((rv = grow((void **)&pb.b, &pb.cap, 0, WS_HDR_LEN, 1)) != PSF_OK)
		return rv;
	memcpy(pb.b, WS_MAGIC, WS_MAGIC_LEN);
	pb.n = WS_HDR_LEN;
	if ((rv = store_pin_now(st)) != PSF_OK) {
		free(pb.b);
		return rv;
	}
	/* The pinned reader is ours until store_pin_release; map grows wait. */
	t.t_txn = st->st_pinned;
	if ((rv = installing(&t, &busy, NULL)) == PSF_OK && busy)
		rv = PSF_ESTATE;
	if (rv == PSF_OK)
		rv = seq_get(&t, &pb.info.seq);
	for (int i = 0; i < N_ALL_DBS && rv == PSF_OK; i++)
		rv = stream_db(st, st->st_pinned, i, &pb);
	store_pin_release(st);
	if (rv == PSF_OK)
		rv = piece_flush(&pb);
	free(pb.b);
	if (rv == PSF_OK) {
		psf_log_info(TAG,
		    "copy: repl_seq %" PRIu64 ", %" PRIu64 " entries, %" PRIu64 " bytes in %" PRIu64
		    " pieces",
		    pb.info.seq, pb.info.entries, pb.info.bytes, pb.info.pieces);
		if (info != NULL)
			*info = pb.info;
	}
	return rv;
}

/* ---- install ---------------------------------------------------------------- */

static psf_err
install_begin_fn(psf_store_txn *txn, void *arg)
{
	psf_err rv;

	(void)arg;
	if ((rv = psf_store_txn_clear_all(txn)) != PSF_OK)
		return rv;
	return psf_store_txn_meta_put_u64(txn, INSTALL_NAME, 0);
}

psf_err
psf_store_install_begin(psf_store *st)
{
	if (st == NULL)
		return PSF_EINVAL;
	return store_update(st, install_begin_fn, NULL, false);
}

typedef struct piece_arg {
	const void *bytes;
	size_t len;
	uint64_t n;
} piece_arg;

static psf_err
install_piece_fn(psf_store_txn *txn, void *arg)
{
	piece_arg *a = arg;
	uint64_t count = 0;
	bool busy;
	psf_err rv;

	if ((rv = installing(txn, &busy, &count)) != PSF_OK)
		return rv;
	if (!busy)
		return PSF_ESTATE;
	if ((rv = ws_apply(txn, a->bytes, a->len)) != PSF_OK)
		return rv;
	return psf_store_txn_meta_put_u64(txn, INSTALL_NAME, count + a->n);
}

psf_err
psf_store_install_piece(psf_store *st, const void *bytes, size_t len)
{
	piece_arg a = {bytes, len, 0};

	if (st == NULL || (bytes == NULL && len > 0))
		return PSF_EINVAL;
	if (ws_check(bytes, len, true, &a.n) != PSF_OK) {
		psf_log_warn(TAG, "install: malformed copy piece (%zu bytes)", len);
		return PSF_EPROTO;
	}
	return store_update(st, install_piece_fn, &a, false);
}

typedef struct end_arg {
	uint64_t seq, entries;
} end_arg;

static psf_err
install_end_fn(psf_store_txn *txn, void *arg)
{
	end_arg *a = arg;
	uint64_t count = 0, seq = 0;
	bool busy;
	psf_err rv;

	if ((rv = installing(txn, &busy, &count)) != PSF_OK || (rv = seq_get(txn, &seq)) != PSF_OK)
		return rv;
	if (!busy)
		return PSF_ESTATE;
	if (count != a->entries || seq != a->seq) {
		psf_log_err(TAG,
		    "install: got %" PRIu64 " entries at repl_seq %" PRIu64 ", expected %" PRIu64
		    " at %" PRIu64 "; the store stays incomplete",
		    count, seq, a->entries, a->seq);
		return PSF_EPROTO;
	}
	return psf_store_txn_meta_del(txn, INSTALL_NAME);
}

psf_err
psf_store_install_end(psf_store *st, uint64_t seq, uint64_t entries)
{
	end_arg a = {seq, entries};

	if (st == NULL)
		return PSF_EINVAL;
	return store_update(st, install_end_fn, &a, false);
}
