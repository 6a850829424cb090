"""A verification call's answer rows in C: for each input, its code record read and the row's
verdict, status and alerts appended to the answer columns.

The reference is ``answer_rows_reference`` in ``tracecore.verification_rows``. This loop
answers in C the row of a code that parsed, is signed by one of the tenant's keys that is not
revoked, is in the ledger with a registered product, and whose batch, product and scanned lot
and expiry were already looked at in this call; every other row (the first of each batch and
product, a failure, a code from elsewhere, a diversion or clone to raise) is answered by
``Call.row``, the reference's own code, at its turn, so the columns come out in the same order.
Code records are ``records._CODE`` (``<BBBxHxxIIIIIqqQ``): status, level, flags, key id,
product, batch, pool, holder, region, ...
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.buffer cimport Py_buffer
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.set cimport PySet_Contains
from libc.stdint cimport uint16_t, uint32_t

from tracecore._speedups._mdb cimport (
    NOTFOUND, UNUSABLE, PT_val, Reader, get as mdb_get, reader)

cdef extern from "Python.h":
    bint PyMemoryView_Check(object)
    Py_buffer *PyMemoryView_GET_BUFFER(object)

cdef enum:
    _FIELDS_END = 28    # the record's bytes the verdict reads: up to and with the region


cdef inline uint32_t _u32(const unsigned char *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | \
        (<uint32_t>p[3] << 24)


cdef bint _has(const Reader *r, bint c, object get, object key, object db) except -1:
    """Whether ``db`` holds ``key``: through LMDB's C API if ``c``, else (or when it cannot
    answer) py-lmdb's ``get``."""
    cdef PT_val value
    cdef int rc = mdb_get(r, key, &value) if c else UNUSABLE
    if rc == 0 or rc == NOTFOUND:
        return rc == 0
    return get(key, None, db) is not None


cdef inline object _record(int rc, object data, object get, object key, object db):
    """A row's code record as py-lmdb gives it (for ``Call.row``): read again if it was read
    through the C API (``rc`` 0), else the one read (None if there is none)."""
    return get(key, None, db) if rc == 0 else data


def answer_rows(object call, list scans, list key_ids, list keys, list stored):
    """``answer_rows_reference`` in C."""
    cdef object out = call.out
    cdef list verdicts = out.verdicts, statuses = out.statuses, masks = out.alert_masks
    cdef list counts = out.scan_counts, firsts = out.first_verified_ms
    cdef list batch_indexes = out.batch_indexes, product_indexes = out.product_indexes
    # Each row's code, its text written out only if asked for (``answers.CodeTexts``).
    cdef list levels = out.levels, texts = out.codes.items, reasons = out.reasons
    cdef list genuine_keys = call.genuine_keys, genuine_rows = call.genuine_rows
    cdef dict batches = call.batches, mismatches = call.mismatches
    cdef dict products = call.product_index
    cdef object get = call.get, db = call.codes_db, slow = call.row, malformed = call.malformed
    cdef object parents_db = call.parents_db
    # The code records (and parents) read through LMDB's C API where ``_mdb`` allows it.
    cdef Reader codes, parents
    cdef bint c_codes = reader(call.txn, db, &codes)
    cdef bint c_parents = c_codes and reader(call.txn, parents_db, &parents)
    cdef PT_val value
    cdef int rc
    cdef object parse_error = call.PARSE_ERROR, genuine = call.GENUINE, revoked = call.revoked
    cdef bytes recallable = call.RECALLABLE, ended = call.ENDED
    cdef tuple status_alerts = call.STATUS_ALERTS
    cdef long data_mismatch = call.DATA_MISMATCH, diversion = call.DIVERSION
    cdef bint diverted = call.diverted, supply_chain = call.supply_chain
    cdef const unsigned char *rec = <const unsigned char *>PyBytes_AS_STRING(recallable)
    cdef const unsigned char *end = <const unsigned char *>PyBytes_AS_STRING(ended)
    cdef Py_ssize_t n = len(scans), row, i = 0
    cdef object scan, key_id, key, stored_key, data, batch, seen, info, rule
    cdef object zero = 0, no_reason = ""
    cdef PyObject *found
    cdef tuple entry
    cdef const unsigned char *p = NULL
    cdef Py_buffer *view
    cdef Py_ssize_t size
    cdef unsigned int status, recorded, level
    cdef uint16_t record_key_id
    cdef uint32_t product_ref, batch_ref, record_region
    cdef long mask, hold
    cdef object b_index, p_index
    # The entry of the batch and product of the row before: a pallet's packs share them.
    cdef uint32_t last_batch_ref = 0, last_product_ref = 0
    cdef object last_batch = None, last_p_index = None
    cdef tuple last_entry = None
    # The lot and expiry comparison of the row before: a pallet's packs share their lot and
    # expiry objects (``parse_many`` reads its head once), so most rows make no key for it.
    cdef uint32_t compared_batch_ref = 0
    cdef object compared_lot = None, compared_expiry = None, lot, expiry
    cdef bint compared = False, mismatched = False
    if len(key_ids) != len(keys) or len(keys) != len(stored):
        raise ValueError("key_ids, keys and stored must have one entry per parsed input")
    for row in range(n):
        scan = scans[row]
        if isinstance(scan, parse_error):
            malformed(row, scan)
            continue
        if i >= len(keys):
            raise ValueError("more parsed inputs than keys")
        key_id, key = key_ids[i], keys[i]
        stored_key = stored[i]
        rc = mdb_get(&codes, stored_key, &value) if c_codes else UNUSABLE
        if rc == 0:
            # The record in the map, read below before any Python code runs; a row answered
            # by ``row`` is handed the record as py-lmdb gives it.
            data = None
            p, size = <const unsigned char *>value.mv_data, <Py_ssize_t>value.mv_size
        elif rc == NOTFOUND:
            data = None
            size = -1
        else:
            data = get(stored_key, None, db)
            # Read transactions hand records out as buffers into the map (bytes in a write one).
            if data is None:
                size = -1
            elif PyMemoryView_Check(data):
                view = PyMemoryView_GET_BUFFER(data)
                p, size = <const unsigned char *>view.buf, view.len
            elif PyBytes_Check(data):
                p, size = <const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)
            else:
                size = 0
        i += 1
        if key_id is None or size < _FIELDS_END:
            slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
            continue
        status = recorded = p[0]
        level = p[1]
        record_key_id = <uint16_t>(p[4] | (p[5] << 8))
        product_ref = _u32(p + 8)
        batch_ref = _u32(p + 12)
        record_region = _u32(p + 24)
        if batch_ref:
            if batch_ref != last_batch_ref or last_entry is None:
                batch = batch_ref
                found = PyDict_GetItem(batches, batch)
                if found is NULL:
                    slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
                    continue
                last_batch_ref, last_batch, last_entry = batch_ref, batch, <tuple>found
            entry = last_entry
            b_index = entry[0]
            mask = entry[1]
            info = entry[2]
            hold = entry[3]
            if hold and rec[status]:
                status = <unsigned int>hold
            lot, expiry = scan.lot, scan.expiry
            if not (compared and batch_ref == compared_batch_ref and lot is compared_lot
                    and expiry is compared_expiry):
                seen = (last_batch, lot, expiry)
                found = PyDict_GetItem(mismatches, seen)
                if found is NULL:
                    slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
                    continue
                compared, compared_batch_ref = True, batch_ref
                compared_lot, compared_expiry, mismatched = lot, expiry, bool(<object>found)
            if mismatched:
                mask |= data_mismatch
            if mask & diversion:
                slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
                continue
            if diverted:
                rule = info.rule
                # A pack inside a container is where its top container is (the region its
                # record holds is its own from before it was packed): resolved by ``row``.
                if rule is not None and ((record_region and not rule.allows(record_region))
                                         or _has(&parents, c_parents, get, stored_key,
                                                 parents_db)):
                    slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
                    continue
        else:
            b_index = -1
            mask = 0
        if supply_chain and end[recorded]:
            slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
            continue
        if revoked and PySet_Contains(revoked, record_key_id):
            slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
            continue
        if not product_ref:
            slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
            continue
        if product_ref != last_product_ref or last_p_index is None:
            found = PyDict_GetItem(products, product_ref)
            if found is NULL:
                slow(row, scan, key_id, key, stored_key, _record(rc, data, get, stored_key, db))
                continue
            last_product_ref, last_p_index = product_ref, <object>found
        p_index = last_p_index
        mask |= <long>status_alerts[status]
        verdicts.append(genuine)
        statuses.append(status)
        masks.append(mask)
        counts.append(zero)
        firsts.append(zero)
        batch_indexes.append(b_index)
        product_indexes.append(p_index)
        levels.append(level)
        texts.append(scan.code)
        reasons.append(no_reason)
        genuine_keys.append(key)
        genuine_rows.append(row)
    if i != len(keys):
        raise ValueError("fewer parsed inputs than keys")
