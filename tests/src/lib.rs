//! conformance: the memserver protocol conformance suite.
#![no_std]
