"""The ENACHI world (paper ``enachi.txt``; design notes ``../shared/specs/enachi.md``): two-tier
Lyapunov scheduling of split inference with progressive feature transmission, on real accuracy
data.  Under construction (issue 19): :mod:`.accuracy` (the surrogate and the shipped digits
table) and :mod:`.digits` (its builder) so far; not yet registered as a world.
"""
