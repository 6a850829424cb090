"""Print jobs: a pool's codes as what a packaging line's printers take.

``labels`` turns codes into labels (what each symbol encodes, what a scanner reads back, the
human-readable lines under it); ``symbols`` draws one symbol as SVG or PNG with zxing-cpp;
``sheet`` lays labels out on PDF pages; ``zpl`` writes thermal-printer commands; ``vdp``
writes the variable-data CSV; ``job`` assembles a job in one output kind; ``seal`` encrypts and
signs a job for one line controller.
"""
