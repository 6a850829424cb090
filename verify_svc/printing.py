"""pharmatrace.v1.PrintJobs: a pool's print job, sealed to a line controller's key, streamed in
pieces; read-only. Rendering runs in a thread, one piece at a time, so the worker's event loop
keeps answering verifications between pieces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from pharmatrace.v1 import printing_pb2 as pb
from pharmatrace.v1 import printing_pb2_grpc

from tracecore.errors import InvalidArgument
from tracecore.ledger.tenants import DataDir
from tracecore.printing.job import Kind
from tracecore.printing.labels import Symbology
from tracecore.usecases import printing
from tracerpc.authz import CALLER

_KINDS = {pb.PRINT_FORMAT_SVG: Kind.SVG, pb.PRINT_FORMAT_PNG: Kind.PNG,
          pb.PRINT_FORMAT_PDF: Kind.PDF, pb.PRINT_FORMAT_ZPL: Kind.ZPL,
          pb.PRINT_FORMAT_CSV: Kind.CSV}
_SYMBOLOGIES = {pb.PRINT_SYMBOLOGY_UNSPECIFIED: None,
                pb.PRINT_SYMBOLOGY_DATAMATRIX: Symbology.GS1_DATAMATRIX,
                pb.PRINT_SYMBOLOGY_QR: Symbology.DIGITAL_LINK_QR,
                pb.PRINT_SYMBOLOGY_GS1_QR: Symbology.GS1_QR,
                pb.PRINT_SYMBOLOGY_CODE128: Symbology.CODE128}


class PrintJobsServicer(printing_pb2_grpc.PrintJobsServicer):
    def __init__(self, data: DataDir) -> None:
        self._data = data
        self._signers = printing.PrintSigners(data)

    async def PrintPool(self, request: pb.PrintPoolRequest,
                        context: grpc.aio.ServicerContext[Any, Any]
                        ) -> AsyncIterator[pb.PrintJobChunk]:
        kind = _KINDS.get(request.format)
        if kind is None:
            raise InvalidArgument("one of SVG, PNG, PDF, ZPL, CSV is required", field="format")
        if request.symbology not in _SYMBOLOGIES:
            raise InvalidArgument("unknown", field="symbology")
        symbology = _SYMBOLOGIES[request.symbology]
        job = await asyncio.to_thread(
            printing.print_pool, self._data, self._signers, CALLER.get(), request.tenant,
            printing.PrintRequest(request.request_id, kind, request.line_key, sscc=request.sscc,
                                  symbology=symbology,
                                  host=request.digital_link_host or printing.DEFAULT_HOST,
                                  png_scale=request.png_scale or 4))
        first: pb.PrintJobChunk | None = pb.PrintJobChunk(labels=job.labels,
                                 line_key_fingerprint=job.line_key.fingerprint,
                                 signer_key=job.signer.to_pem(),
                                 signer_fingerprint=job.signer.signer_fingerprint)
        while (piece := await asyncio.to_thread(next, job.pieces, None)) is not None:
            if first is not None:
                first.data = piece
                yield first
                first = None
            else:
                yield pb.PrintJobChunk(data=piece)
