"""One write transaction's view of the packs for ``tracecore.ledger.lifecycle``: records read
once and kept in overlays (a request's changes over its group's), containers and their contents,
master data looked up once, counters tallied, and everything written at the end (``flush``).
It is the ``Packs`` that ``tracecore.lifecycle_rules`` reads and changes."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import cast

from pharmatrace.v1 import common_pb2 as cpb

from tracecore import localday, sscc
from tracecore.codes import Code, Scheme
from tracecore.errors import InvalidArgument
from tracecore.events import Event, EventKind
from tracecore.ledger import foreign, policy
from tracecore.ledger.contents import (
    MAX_DEPTH,
    Row,
    custody_moves,
    inheriting,
    row_of,
    stored_rows,
)
from tracecore.ledger.counters import Flow, Projection
from tracecore.ledger.env import Txn
from tracecore.ledger.journal import Journal
from tracecore.ledger.overlay import Overlay
from tracecore.ledger.oversight import Holds
from tracecore.ledger.records import (
    FLAG_IN_TRANSIT,
    CodeRecord,
    in_key_order,
    packed_in_key_order,
    ref_key,
    ref_of,
    sorted_keys,
    unpack_many,
)
from tracecore.ledger.sscc_pools import SsccPools, logistic_unit
from tracecore.ledger.store import Ledger
from tracecore.lifecycle_request import Refused, Request
from tracecore.lifecycle_rules import MAX_CODES_PER_REQUEST, UNCOUNTED
from tracecore.oversight import Raised, RegionRule
from tracecore.status import Status

#: What ``Session.parent`` finds for a code whose container it has not read yet.
_UNREAD = object()


class Session:
    """One write transaction applying many requests: the ``Packs`` the rules see."""

    def __init__(self, ledger: Ledger, txn: Txn, now_ms: int) -> None:
        self.ledger = ledger
        self.txn = txn
        self.now_ms = now_ms
        self.db = ledger.db
        # A method of this session kept by the journal would make a cycle: the session, with
        # every record it read, would then wait for the cyclic collector instead of being freed
        # when the group commits.
        self.journal = Journal(ledger)
        self.keys = ledger.codes
        self.group = Overlay(None)
        self.view = self.group
        self._parties: dict[str, tuple[int, int]] = {}
        self._party_ids: dict[int, str] = {}
        self._batches: dict[tuple[int, str], int] = {}
        self._expiry: dict[int, dt.date] = {}
        self._requesters: dict[int, tuple[str, str]] = {}
        self._dispense_elsewhere: bool | None = None
        self._zone = policy.day_zone(ledger, txn)
        self.holds = Holds(ledger, txn)
        self._batch_rules: dict[int, tuple[cpb.Batch, RegionRule]] = {}
        self._party_rules: dict[int, RegionRule | None] = {}
        self._hierarchies: dict[int, Sequence[cpb.PackLevel]] = {}
        self._children = txn.cursor(db=ledger.db["children"])
        self._codes = txn.cursor(db=ledger.db["codes"])
        self._parents = txn.cursor(db=ledger.db["parents"])
        # Records as the transaction found them, read once: the overlays above hold every change
        # until ``flush``, so what the ledger answers stays true for the whole session.
        self._stored: dict[bytes, CodeRecord | None] = {}
        # The keys of ``_stored`` the ledger has no record of.
        self._absent: set[bytes] = set()
        # The key LMDB holds for each code key met: encrypted once, then used by every write.
        self._stored_keys: dict[bytes, bytes] = {}
        self._days: dict[int, int] = {}
        # Containers of codes as the transaction found them, and their tallies, read once.
        self._stored_parents: dict[bytes, bytes | None] = {}
        self._stored_contents: dict[bytes, dict[Row, int]] = {}
        self.request = Request(())

    # -- reads through the overlays --------------------------------------------------------------

    def record(self, key: bytes) -> CodeRecord | None:
        layer: Overlay | None = self.view
        while layer is not None:
            found = layer.records.get(key)
            if found is not None:
                return found
            layer = layer.below
        stored = self._stored
        if key in stored:
            return stored[key]
        data = self._codes.get(self.stored_key(key))
        if data is None:
            self._absent.add(key)
        found = stored[key] = CodeRecord.unpack(data) if data is not None else None
        return found

    def stored_key(self, key: bytes) -> bytes:
        """The key LMDB holds for a code key (``Ledger.codes``), encrypted once a session."""
        found = self._stored_keys.get(key)
        if found is None:
            found = self._stored_keys[key] = self.keys.stored(key)
        return found

    def stored_keys(self, keys: Iterable[bytes]) -> list[bytes]:
        """``stored_key`` of each key, those not met yet encrypted together."""
        known = self._stored_keys
        keys = list(keys)
        try:
            return list(map(known.__getitem__, keys))
        except KeyError:
            new = list(dict.fromkeys(k for k in keys if k not in known))
            known.update(zip(new, self.keys.stored_many(new), strict=True))
            return list(map(known.__getitem__, keys))

    def prefetch(self, keys: Iterable[bytes], *, containers: bool = False) -> None:
        """Reads the stored records of ``keys`` not read yet, in key order (one pass over the
        tree instead of a walk from its root per code), decoded together; with
        ``containers``, the container each is in as well, for rules that ask ``parent`` of
        every code."""
        stored = self._stored
        # Each once, in no order yet (a set's difference with a dict runs in C).
        wanted = list(set(keys).difference(stored))
        if not wanted:
            return
        # Keys not read yet are mostly not met yet either: encrypted at once (deterministic,
        # so one met before gets the same stored key again).
        ciphered = self.keys.stored_many(wanted)
        self._stored_keys.update(zip(wanted, ciphered, strict=True))
        # In the order the ledger keeps them: by stored (encrypted) key.
        in_order, missing = in_key_order(ciphered, wanted)
        if containers:
            self._read_parents(missing, in_order)
        data: list[bytes | memoryview | None] = list(map(self._codes.get, in_order))
        if None in data:
            absent = [k for k, d in zip(missing, data, strict=True) if d is None]
            stored.update(zip(absent, repeat(None)))
            self._absent.update(absent)
            found = [(k, d) for k, d in zip(missing, data, strict=True) if d is not None]
            missing = [k for k, _ in found]
            data = [d for _, d in found]
        stored.update(zip(missing, unpack_many(cast("list[bytes | memoryview]", data)),
                          strict=True))

    def _read_parents(self, keys: list[bytes], stored_keys: list[bytes]) -> None:
        """The containers of ``keys`` (their stored keys in key order) as the transaction
        holds them, into what ``parent`` reads first."""
        held = list(map(self._parents.get, stored_keys))
        parents = self._stored_parents
        if not any(held):
            parents.update(zip(keys, repeat(None)))
            return
        plain = self.keys.plain
        parents.update(zip(keys, [plain(bytes(h)) if h is not None else None for h in held],
                           strict=True))

    def unknown(self, keys: list[bytes]) -> list[int]:
        """The places in ``keys`` of those the ledger has no record of (this session's own new
        records included): none for an event of known codes, found in one pass."""
        self.prefetch(keys)
        if self._absent.isdisjoint(keys):
            return []
        stored = self._stored
        return [i for i in [i for i, k in enumerate(keys) if stored[k] is None]
                if self.record(keys[i]) is None]

    def parent(self, key: bytes) -> bytes | None:
        layer: Overlay | None = self.view
        while layer is not None:
            if key in layer.parents:
                return layer.parents[key]
            layer = layer.below
        stored = self._stored_parents
        found = stored.get(key, _UNREAD)
        if found is not _UNREAD:
            return cast("bytes | None", found)
        data = self._parents.get(self.stored_key(key))
        found = stored[key] = self.keys.plain(bytes(data)) if data is not None else None
        return found

    def ancestors(self, key: bytes) -> list[bytes]:
        """The containers ``key`` is in, innermost first."""
        out: list[bytes] = []
        parent = self.parent(key)
        while parent is not None and len(out) < MAX_DEPTH:
            out.append(parent)
            parent = self.parent(parent)
        return out

    def custody(self, key: bytes, record: CodeRecord) -> CodeRecord:
        """``record`` (of ``key``) with the custody of its top container
        (``tracecore.ledger.contents``)."""
        chain = self.ancestors(key)
        top = self.record(chain[-1]) if chain else None
        return record if top is None else inheriting(record, top)

    def contents(self, key: bytes) -> dict[Row, int]:
        """The packs inside a container at any depth, by tally row."""
        stored = self._stored_contents.get(key)
        if stored is None:
            stored = self._stored_contents[key] = stored_rows(
                self.txn, self.db["contents"], self.stored_key(key))
        layers: list[Overlay] = []
        layer: Overlay | None = self.view
        while layer is not None:
            if key in layer.contents.rows:
                layers.append(layer)
            layer = layer.below
        if not layers:
            return dict(stored)
        total: Counter[Row] = Counter(stored)
        for layer in layers:
            total.update(layer.contents.rows[key])
        return {row: n for row, n in total.items() if n}

    def _with_own(self, key: bytes, record: CodeRecord) -> Counter[Row]:
        """``contents`` of a pack with the pack itself."""
        rows: Counter[Row] = Counter(self.contents(key)) if record.level > 1 else Counter()
        rows[row_of(record)] += 1
        return rows

    def children(self, key: bytes) -> list[bytes]:
        """What ``key`` holds, in key order: the ledger's list as it is (a dupsort database keeps
        it sorted) unless this session changed it."""
        cursor = self._children
        kids = sorted(self.keys.plain_many(cursor.iternext_dup())) \
            if cursor.set_key(self.stored_key(key)) else []
        layers: list[Overlay] = []
        layer: Overlay | None = self.view
        while layer is not None:
            if key in layer.children_removed or key in layer.children_added:
                layers.append(layer)
            layer = layer.below
        if not layers:
            return kids
        changed = set(kids)
        for layer in reversed(layers):
            changed.difference_update(layer.children_removed.get(key, ()))
            changed.update(layer.children_added.get(key, ()))
        return sorted(changed)

    def records_many(self, keys: list[bytes]) -> list[tuple[bytes, CodeRecord | None]]:
        """Records of many keys through the overlays; the ledger read in key order."""
        return list(zip(keys, self._records(keys), strict=True))

    def _records(self, keys: list[bytes]) -> list[CodeRecord | None]:
        """``record`` of each key: the stored records read together, then whatever the overlays
        changed of them laid over, lowest overlay first."""
        self.prefetch(keys)
        stored = self._stored
        changed: list[dict[bytes, CodeRecord]] = []
        layer: Overlay | None = self.view
        while layer is not None:
            # Only the overlays that changed one of these codes (mostly none: an event's codes
            # are seldom named by an earlier event of its group).
            if layer.records and not layer.records.keys().isdisjoint(keys):
                changed.append(layer.records)
            layer = layer.below
        if not changed:
            return list(map(stored.__getitem__, keys))
        found: dict[bytes, CodeRecord | None] = dict(
            zip(keys, map(stored.__getitem__, keys), strict=True))
        for records in reversed(changed):
            found.update((k, records[k]) for k in records.keys() & found.keys())
        return list(map(found.__getitem__, keys))

    def tree(self, key: bytes) -> list[tuple[bytes, CodeRecord]]:
        """``key`` and everything packed inside it, with their records (custody resolved: see
        ``tracecore.ledger.contents``), level by level; only containers (level above 1: units
        never contain anything) are looked up for contents."""
        top = self.record(key)
        if top is None:
            raise Refused("not issued by this tenant")
        top = self.custody(key, top)
        if top.level <= 1:
            return [(key, top)]
        out: list[tuple[bytes, CodeRecord]] = []
        frontier = [key]
        while frontier:
            records = self._records(frontier)
            if None in records:
                raise Refused("not issued by this tenant")
            out.extend(zip(frontier, cast("list[CodeRecord]", records), strict=True))
            following: list[bytes] = []
            for k, r in zip(frontier, records, strict=True):
                if r is not None and r.level > 1:
                    following.extend(self.children(k))
            if len(out) + len(following) > MAX_CODES_PER_REQUEST + 1:
                raise InvalidArgument(
                    f"more than {MAX_CODES_PER_REQUEST:,} packs in one request", field="codes")
            frontier = following
        return [(k, inheriting(r, top)) for k, r in out]

    def party(self, party_id: str, field: str) -> tuple[int, int]:
        """(party ref, region as an integer) of a registered party."""
        found = self._parties.get(party_id)
        if found is None:
            named = self.request.external_parties.get(party_id)
            if named is not None:
                foreign.record_external(self.ledger, self.txn, party_id, identifier=named[0],
                                        gln=named[1], told_by=self.request.who,
                                        now_ms=self.now_ms)
            ref, party = self.ledger.party_in(self.txn, party_id, field)
            found = self._parties[party_id] = (ref, int(party.region or 0))
            self._party_ids[ref] = party_id
        return found

    def party_id(self, ref: int) -> str:
        if ref not in self._party_ids:
            self._party_ids[ref] = self.ledger.party_by_ref(self.txn, ref).party_id
        return self._party_ids[ref]

    def batch_ref(self, product_ref: int, lot: str) -> int:
        key = (product_ref, lot)
        if key not in self._batches:
            data = self.txn.get(ref_key(product_ref) + lot.encode(), db=self.db["batch_ids"])
            if data is None:
                raise Refused(f"batch {lot} is not registered for this code's product")
            self._batches[key] = ref_of(data)
        return self._batches[key]

    def hold_status(self, batch_ref: int, product_ref: int) -> Status | None:
        return self.holds.hold_status(batch_ref, product_ref)

    def batch_rule(self, batch_ref: int) -> tuple[cpb.Batch, RegionRule]:
        """A batch and the regions it may be sold in."""
        found = self._batch_rules.get(batch_ref)
        if found is None:
            batch = self.ledger.batch_by_ref(self.txn, batch_ref)
            found = self._batch_rules[batch_ref] = (
                batch, RegionRule(batch.authorised_regions, "batch"))
        return found

    def party_rule(self, party_ref: int) -> RegionRule | None:
        """The regions a party (a distributor) may sell into; None when it is not restricted."""
        if party_ref not in self._party_rules:
            party = self.ledger.party_by_ref(self.txn, party_ref)
            self._party_rules[party_ref] = (
                RegionRule(party.authorised_regions, party.party_id)
                if party.authorised_regions else None)
        return self._party_rules[party_ref]

    def hierarchy(self, product_ref: int) -> Sequence[cpb.PackLevel]:
        if product_ref not in self._hierarchies:
            self._hierarchies[product_ref] = list(
                self.ledger.product_by_ref(self.txn, product_ref).hierarchy) if product_ref \
                else []
        return self._hierarchies[product_ref]

    def pool_requester(self, pool_ref: int) -> tuple[str, str]:
        found = self._requesters.get(pool_ref)
        if found is None:
            record = self.ledger.pool_by_ref(self.txn, pool_ref)
            found = self._requesters[pool_ref] = (record.requester, record.requester_party)
        return found

    def shipped_by(self, key: bytes) -> int:
        """The restricted party that shipped a pack now in transit; 0 if none was recorded."""
        layer: Overlay | None = self.view
        while layer is not None:
            if key in layer.shipments:
                return layer.shipments[key] or 0
            layer = layer.below
        data = self.txn.get(self.stored_key(key), db=self.db["shipments"])
        return ref_of(data) if data is not None else 0

    def expires_on(self, batch_ref: int) -> dt.date | None:
        if not batch_ref:
            return None
        if batch_ref not in self._expiry:
            batch = self.ledger.batch_by_ref(self.txn, batch_ref)
            self._expiry[batch_ref] = dt.date.fromisoformat(batch.expires_on)
        return self._expiry[batch_ref]

    # -- writes into the current overlay --------------------------------------------------------

    def put(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        view = self.view
        view.records[key] = after
        view.moves.append((before, after))

    def put_many(self, keys: Sequence[bytes], before: Sequence[CodeRecord],
                 after: Sequence[CodeRecord]) -> None:
        """``put`` of many codes (a container and all it holds)."""
        view = self.view
        view.records.update(zip(keys, after, strict=True))
        view.moves.extend(zip(before, after, strict=True))

    def carry(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        """Moves the counters of everything inside the top container ``key`` from its custody
        ``before`` to ``after`` (the container's own record is ``put``)."""
        if before.level > 1:
            self._move_custody(self.contents(key), before, after)

    def _move_custody(self, rows: dict[Row, int] | Counter[Row], before: CodeRecord,
                      after: CodeRecord) -> None:
        moves: list[tuple[Projection | None, Projection, int]] = [
            m for m in custody_moves(rows, before, after) if m[1][3] not in UNCOUNTED]
        if moves:
            self.view.tally.move_many(moves)
            self.view.regions.move_many(moves)

    def flow_rows(self, rows: dict[Row, int], region: int, flow: Flow, at_ms: int) -> None:
        """``flow`` of the units of ``rows`` at ``at_ms``, in ``region``."""
        self.view.tally.flow_rows(((row[2], n) for row, n in rows.items() if row[0] == 1),
                                  region, flow, self._day(at_ms), at_ms)

    def restated(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        """A pack's record changed in what its containers' tallies count (its status): every
        container it is in counts it anew."""
        was, now = row_of(before), row_of(after)
        if was != now:
            chain = self.ancestors(key)
            if chain:
                self.view.contents.add(chain, {was: -1, now: 1}, 1)

    def link(self, parent: bytes, child: bytes) -> None:
        """Packs ``child`` into ``parent``: it and what it holds are counted in every
        container above, and take the custody of the top one."""
        record = self.record(child)
        if record is not None:
            rows = self._with_own(child, record)
            chain = [parent, *self.ancestors(parent)]
            self.view.contents.add(chain, rows, 1)
            top = self.record(chain[-1])
            if top is not None:
                self._move_custody(rows, record, top)
        self.view.parents[child] = parent
        self.view.children_added.setdefault(parent, set()).add(child)
        self.view.children_removed.get(parent, set()).discard(child)

    def unlink(self, parent: bytes, child: bytes, *, settle: bool = True) -> None:
        """Takes ``child`` out of ``parent``. With ``settle``, it keeps the custody it
        inherited, written into its record; without, it goes back to the custody its record
        holds (an aggregation undone in the same request)."""
        record = self.record(child)
        if record is not None:
            rows = self._with_own(child, record)
            resolved = self.custody(child, record)
            self.view.contents.add([parent, *self.ancestors(parent)], rows, -1)
            if not settle:
                self._move_custody(rows, resolved, record)
            elif resolved is not record:
                self.view.records[child] = resolved
        self.view.parents[child] = None
        self.view.children_removed.setdefault(parent, set()).add(child)
        self.view.children_added.get(parent, set()).discard(child)

    def commissioned(self, batch_ref: int, key: bytes) -> None:
        self.view.batch_codes.append((batch_ref, key))

    def returned(self, pool_ref: int) -> None:
        returns = self.view.pool_returns
        returns[pool_ref] = returns.get(pool_ref, 0) + 1

    def shipped(self, key: bytes, shipper: int | None) -> None:
        self.view.shipments[key] = shipper

    def flow(self, record: CodeRecord, flow: Flow, at_ms: int) -> None:
        self.view.tally.flow(record, flow, self._day(at_ms), at_ms)

    def flow_many(self, records: Sequence[CodeRecord], flow: Flow, at_ms: int) -> None:
        self.view.tally.flow_many(records, flow, self._day(at_ms), at_ms)

    def _day(self, at_ms: int) -> int:
        """The tenant's local day of ``at_ms``, worked out once per instant."""
        day = self._days.get(at_ms)
        if day is None:
            day = self._days[at_ms] = localday.day_of(at_ms, self._zone)
        return day

    def dispense_elsewhere(self) -> bool:
        if self._dispense_elsewhere is None:
            self._dispense_elsewhere = policy.read_in(self.ledger, self.txn).dispense_elsewhere
        return self._dispense_elsewhere

    def raise_alert(self, raised: Raised) -> int:
        alerts = self.view.alerts
        alerts.append(raised)
        return len(alerts) - 1

    def first_sight(self, event: Event, key: bytes) -> None:
        """Records a code minted elsewhere that a partner's event names for the first time:
        in transit to the receiver of a receipt, ISSUED for a commissioning, else ACTIVE where
        the event happened."""
        code = Code.from_key(key)
        product = code.product
        if foreign.mints(self.ledger, self.txn, product):
            return  # not signed here, yet of a product we mint: refused as not issued by us
        level = event.level if event.kind is EventKind.COMMISSION else 0
        if code.scheme is Scheme.SSCC:
            if SsccPools(self.ledger).registered_in(self.txn, code.serial):
                return  # under our own prefix yet never allocated: not issued by us
            if event.parent is not None and event.parent.key() == key:
                level = sscc.unit_level(event.level, [
                    r.level for _, r in self.records_many(Code.keys_of(event.codes))
                    if r is not None])
        holder, region = self.party(event.party_id, "context.party_id") if event.party_id \
            else (0, 0)
        status = Status.ISSUED if event.kind is EventKind.COMMISSION else Status.ACTIVE
        flags = FLAG_IN_TRANSIT if event.kind is EventKind.RECEIVE else 0
        after = foreign.new_record(foreign.product_ref(self.ledger, self.txn, product), status,
                                   self.now_ms, level=level, holder=holder, region=region,
                                   flags=flags)
        self.put(key, after.evolve(status=Status.ISSUED), after)
        # Who minted it, as the partner's event says: a commissioning's party commissioned
        # (and so minted or bought) the code; an EPCIS event names the GS1 company prefix of
        # its EPC URIs, or says so in ``pharmatrace:mintedBy``.
        minted_by = event.extra.get("minted_by") or (
            event.party_id if event.kind is EventKind.COMMISSION else "")
        self.view.foreign[key] = foreign.Provenance(
            minted_by=minted_by, told_by=event.party_id or self.request.who, via=self.request.via
        ).record(self.now_ms)

    def logistic_unit(self, event: Event, unit: Code) -> CodeRecord | None:
        """An SSCC from this tenant's pools named as a parent for the first time becomes a
        logistic unit (``sscc_pools.logistic_unit``) at the level its contents call for; its
        record, or None when it was one already or was never allocated here (the aggregation
        is then refused as of a container not issued here)."""
        key = unit.key()
        before = self.record(key)
        if before is not None and (before.status is not Status.ISSUED or before.foreign):
            return None
        if before is None and \
                SsccPools(self.ledger).allocated_in(self.txn, unit.serial) is None:
            return None
        holder, region = self.party(event.party_id, "context.party_id") if event.party_id \
            else (0, 0)
        contents = [r.level for _, r in self.records_many(Code.keys_of(event.codes))
                    if r is not None]
        after = logistic_unit(sscc.unit_level(event.level, contents), holder, region,
                              self.now_ms)
        self.put(key, before or after.evolve(status=Status.ISSUED), after)
        return after

    def flush(self) -> None:
        """Writes the group's overlay into the transaction."""
        group = self.group
        group.count()
        stored = self.stored_key
        stored_many = self.stored_keys
        codes = self.txn.cursor(db=self.db["codes"])
        records = group.records
        codes.putmulti(packed_in_key_order(stored_many(records), list(records.values())))
        for child, parent in group.parents.items():
            if parent is None:
                self.txn.delete(stored(child), db=self.db["parents"])
            else:
                self.txn.put(stored(child), stored(parent), db=self.db["parents"])
        for parent, kids in group.children_removed.items():
            held = stored(parent)
            for child in kids:
                self.txn.delete(held, stored(child), db=self.db["children"])
        for parent, kids in group.children_added.items():
            held = stored(parent)
            self.txn.cursor(db=self.db["children"]).putmulti(
                ((held, child) for child in sorted(stored_many(kids))), dupdata=True)
        if group.batch_codes:
            by_batch: dict[int, list[bytes]] = {}
            for batch_ref, key in group.batch_codes:
                by_batch.setdefault(batch_ref, []).append(key)
            cursor = self.txn.cursor(db=self.db["batch_codes"])
            for batch_ref in sorted(by_batch):
                cursor.putmulti(zip(repeat(ref_key(batch_ref)),
                                    sorted_keys(stored_many(by_batch[batch_ref]))),
                                dupdata=True)
        group.tally.write(self.txn, self.db["counters"])
        group.contents.write(self.txn, self.db["contents"], stored)
        group.regions.write(self.txn, self.db["batch_regions"])
        for key, shipper in group.shipments.items():
            if shipper is None:
                self.txn.delete(stored(key), db=self.db["shipments"])
            else:
                self.txn.put(stored(key), ref_key(shipper), db=self.db["shipments"])
        if group.pool_returns:
            self.ledger.count_returns(self.txn, group.pool_returns)
        if group.foreign:
            self.txn.cursor(db=self.db["foreign_codes"]).putmulti(sorted(
                zip(stored_many(group.foreign), group.foreign.values(), strict=True)))
