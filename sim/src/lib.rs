//! The Vortex simulator: the real scheduler in madsim's virtual time against simulated stages.
