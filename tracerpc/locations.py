"""Where a batch's packs are, as the API shows it: recall answers (codegen_svc) and LocateBatch
(verify_svc) build the same message from ``tracecore.oversight.Location``."""

from __future__ import annotations

from pharmatrace.v1 import lifecycle_pb2 as pb

from tracecore.oversight import Location, RecallNote


def batch_location(location: Location) -> pb.BatchLocation:
    """``pharmatrace.v1.BatchLocation``: totals that partition the units, holders, provinces."""
    batch = location.batch
    seen = location.whereabouts()
    t = seen.totals
    out = pb.BatchLocation(
        product=batch.product, product_name=location.product.name, lot=batch.lot,
        expires_on=batch.expires_on, units=t.units, at_plant=t.at_plant, in_stock=t.in_stock,
        in_transit=t.in_transit, dispensed=t.dispensed,
        other_decommissioned=t.other_decommissioned, destroyed=t.destroyed, voided=t.voided,
        holders=[pb.HolderCount(party_id=h.party_id, party_name=h.party_name,
                                kind=h.kind,  # type: ignore[arg-type]
                                region=h.region,
                                status=int(h.status),  # type: ignore[arg-type]
                                in_transit=h.in_transit, units=h.units)
                 for h in seen.holders],
        regions=[pb.RegionCount(region=r.region, name=r.name, in_stock=r.in_stock,
                                in_transit=r.in_transit, dispensed=r.dispensed)
                 for r in seen.provinces],
    )
    if location.recall is not None:
        out.recall.CopyFrom(_recall(location.recall))
    if location.withdrawal is not None:
        out.withdrawal.CopyFrom(_recall(location.withdrawal))
    return out


def _recall(note: RecallNote) -> pb.Recall:
    return pb.Recall(when_ms=note.when_ms, reason=note.reason, who=note.who,
                     party_id=note.party_id, event_seq=note.event_seq)
