"""``streamserve demo``: the stack on embedded defaults, a drifting stream, a live view and
a report."""
