"""Data: dataset formats, importers, the SynthCourt generator, video readers, optical flow, sample cutting and the
Ray Data pipeline that turns a manifest into training and evaluation samples (SPEC §3)."""
