"""The use cases: what the service does, one module per capability, under every transport.

Each use case takes plain arguments, returns plain results, raises the errors of
``tracecore.errors``, and declares (``declare.use_case``) the roles that may run it, whether
it writes, and its scope. The gRPC servicers, the HTTP front door and the command line call
these and nothing else.
"""
