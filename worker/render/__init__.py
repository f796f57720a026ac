"""What a job writes: the pictures rendered from a mask (edges, framing, compositing,
encoding, colour), the subject and quality flags, and the verdict on a preset's rendition.
A leaf: it imports nothing of the engine (import-linter checks it)."""
