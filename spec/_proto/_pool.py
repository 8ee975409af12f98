"""The private descriptor pool our generated modules register into.

Why not the default pool: coremltools registers the same ``CoreML.Specification``
names in the default pool, with a slightly different file set. Keeping ours apart
lets both live in one process (the tests use coremltools as an oracle) while the
wire format, message names and field numbers stay identical.
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
