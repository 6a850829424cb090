"""The code schemes, one module each, registered here: a new scheme is a module implementing
``CodeScheme`` (see ``base``), its number in ``Scheme`` (the wire enum), and one line below.

SSCC registers first: its readers claim only text that is plainly an SSCC (see ``sscc``), such
as ``(00)`` and 18 digits. NMPA comes next: for input that starts with a digit, its reader
claims 20-digit codes and leaves the rest to the GS1 element string reader.
"""

from tracecore.schemes import gs1, nmpa, sscc
from tracecore.schemes.base import (
    QUICK_READERS,
    READERS,
    SCHEMES,
    SYMBOLOGY_READERS,
    Code,
    CodeScheme,
    Form,
    Scan,
    Scheme,
    register,
)

register(sscc.SCHEME)
register(nmpa.SCHEME)
register(gs1.SCHEME)

__all__ = [
    "QUICK_READERS",
    "READERS",
    "SCHEMES",
    "SYMBOLOGY_READERS",
    "Code",
    "CodeScheme",
    "Form",
    "Scan",
    "Scheme",
    "register",
]
