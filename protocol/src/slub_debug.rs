//! A client's `slub_debug` setting (`system.toml`), in the syntax of Linux's boot parameter
//! (`Documentation/mm/slub.rst`): debug flags for all of the client's caches, or for the
//! caches a list of names picks.
//!
//! ```text
//! "FZPU"                   every cache of the client
//! "FZ,kmalloc-*"           the caches whose name starts with "kmalloc-"
//! "Z,kmalloc-32,dentry"    those two caches
//! "P;FZ,kmalloc-64"        P for every cache, but F and Z for kmalloc-64
//! ",dentry"                all four flags (no letters: everything) for dentry
//! "-"                      nothing
//! ```
//!
//! Blocks are separated by `;`; a block is its flag letters, then `,` and cache names (a name
//! ending in `*` matches every name starting with what precedes it). A cache takes the flags of
//! the first block naming it, else those of a block without names, else none. Letters (either
//! case): `F` consistency checks (`SLAB_CONSISTENCY_CHECKS`), `Z` red zones (`SLAB_RED_ZONE`),
//! `P` poison (`SLAB_POISON`), `U` owner records (`SLAB_STORE_USER`), `-` none; no letter at
//! all means all four. Linux's `T` (trace), `A` (failslab) and `O` (skip higher-order caches)
//! are not supported and refused, as is any other letter.

use crate::flags::{SLAB_CONSISTENCY_CHECKS, SLAB_DEBUG, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER};

/// Longest `slub_debug` string, in bytes.
pub const SLUB_DEBUG_MAX: usize = 255;

/// Why a `slub_debug` string is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlubDebugError {
    /// Longer than [`SLUB_DEBUG_MAX`] bytes.
    TooLong,
    /// A flag letter this server does not support (Linux's `T`, `A`, `O`, or an unknown one).
    UnknownFlag(char),
    /// An empty cache name in a list (`"Z,,dentry"`), or one longer than 31 bytes, or with a
    /// character a cache name cannot have.
    BadName,
}

impl core::fmt::Display for SlubDebugError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SlubDebugError::TooLong => write!(f, "longer than {SLUB_DEBUG_MAX} bytes"),
            SlubDebugError::UnknownFlag(c) => write!(f, "flag {c:?} is not supported (F, Z, P, U and - are)"),
            SlubDebugError::BadName => f.write_str("a cache name in the list is empty, too long or not printable"),
        }
    }
}

/// A checked `slub_debug` setting. [`SlubDebug::NONE`] debugs nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlubDebug {
    spec: heapless::String<SLUB_DEBUG_MAX>,
}

/// The flags of one block's letters.
fn letters(letters: &str) -> Result<u32, SlubDebugError> {
    if letters.is_empty() {
        return Ok(SLAB_DEBUG);
    }
    letters.chars().try_fold(0u32, |flags, c| {
        Ok(flags
            | match c.to_ascii_uppercase() {
                'F' => SLAB_CONSISTENCY_CHECKS,
                'Z' => SLAB_RED_ZONE,
                'P' => SLAB_POISON,
                'U' => SLAB_STORE_USER,
                '-' => 0,
                other => return Err(SlubDebugError::UnknownFlag(other)),
            })
    })
}

/// Whether cache `name` matches `pattern` (a trailing `*` matches any rest).
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl SlubDebug {
    /// No debugging.
    pub const NONE: SlubDebug = SlubDebug { spec: heapless::String::new() };

    /// Checks `spec` (see the module documentation).
    pub fn parse(spec: &str) -> Result<SlubDebug, SlubDebugError> {
        let stored = heapless::String::try_from(spec).map_err(|_| SlubDebugError::TooLong)?;
        for block in spec.split(';') {
            let mut parts = block.split(',');
            letters(parts.next().unwrap_or(""))?;
            for name in parts {
                let pattern = name.strip_suffix('*').unwrap_or(name);
                let printable = pattern.bytes().all(|b| b.is_ascii_graphic() && b != b'*');
                if name.is_empty() || name.len() > crate::CACHE_NAME_MAX || !printable {
                    return Err(SlubDebugError::BadName);
                }
            }
        }
        Ok(SlubDebug { spec: stored })
    }

    /// The string it was parsed from.
    pub fn as_str(&self) -> &str {
        self.spec.as_str()
    }

    /// The debug flags a cache named `name` gets: those of the first block naming it, else
    /// those of a block without names, else none.
    pub fn flags_for(&self, name: &str) -> u32 {
        if self.spec.is_empty() {
            return 0;
        }
        let mut global = None;
        for block in self.spec.split(';') {
            let (flags, names) = block.split_once(',').unwrap_or((block, ""));
            let flags = letters(flags).unwrap_or(0);
            if names.is_empty() {
                global.get_or_insert(flags);
            } else if names.split(',').any(|pattern| matches(pattern, name)) {
                return flags;
            }
        }
        global.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(spec: &str, name: &str) -> u32 {
        SlubDebug::parse(spec).unwrap().flags_for(name)
    }

    #[test]
    fn linux_syntax_picks_caches_and_flags() {
        assert_eq!(flags("FZPU", "dentry"), SLAB_DEBUG);
        assert_eq!(flags("fz", "dentry"), SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE);
        assert_eq!(flags("FZ,kmalloc-*", "kmalloc-32"), SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE);
        assert_eq!(flags("FZ,kmalloc-*", "dentry"), 0);
        assert_eq!(flags("Z,kmalloc-32,dentry", "dentry"), SLAB_RED_ZONE);
        assert_eq!(flags("Z,kmalloc-32,dentry", "kmalloc-64"), 0);
        assert_eq!(flags("P;FZ,kmalloc-64", "kmalloc-64"), SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE);
        assert_eq!(flags("P;FZ,kmalloc-64", "kmalloc-32"), SLAB_POISON);
        assert_eq!(flags(",dentry", "dentry"), SLAB_DEBUG);
        assert_eq!(flags("-", "dentry"), 0);
        assert_eq!(flags("", "dentry"), 0);
        assert_eq!(SlubDebug::NONE.flags_for("x"), 0);
    }

    #[test]
    fn unsupported_letters_and_bad_names_are_refused() {
        assert_eq!(SlubDebug::parse("FT"), Err(SlubDebugError::UnknownFlag('T')));
        assert_eq!(SlubDebug::parse("O"), Err(SlubDebugError::UnknownFlag('O')));
        assert_eq!(SlubDebug::parse("Z,,dentry"), Err(SlubDebugError::BadName));
        assert_eq!(SlubDebug::parse("Z,a b"), Err(SlubDebugError::BadName));
        assert_eq!(SlubDebug::parse(&"Z".repeat(300)), Err(SlubDebugError::TooLong));
        assert_eq!(SlubDebug::parse("Z,kmalloc-*").unwrap().as_str(), "Z,kmalloc-*");
    }
}
