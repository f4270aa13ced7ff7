//! Where the library's own reports go (slab errors, a `SLAB_PANIC` failure): stderr on Linux;
//! without `std`, the output the platform set with [`set_output`] (on seL4, the kernel's
//! debug console), or nowhere before it did.

use core::fmt;

/// Writes one line (the newline is added).
pub fn line(text: fmt::Arguments<'_>) {
    platform::line(text);
}

/// Writes one line, then ends the process (Linux: `abort()`; without `std`: a panic, which
/// the platform's panic handler turns into the task's end).
pub fn fatal(text: fmt::Arguments<'_>) -> ! {
    platform::fatal(text)
}

#[cfg(feature = "std")]
mod platform {
    use core::fmt;

    pub(super) fn line(text: fmt::Arguments<'_>) {
        std::eprintln!("{text}");
    }

    pub(super) fn fatal(text: fmt::Arguments<'_>) -> ! {
        std::eprintln!("{text}");
        std::process::abort()
    }
}

#[cfg(not(feature = "std"))]
pub use platform::set_output;

#[cfg(not(feature = "std"))]
mod platform {
    use core::fmt;

    /// The platform's line writer.
    static OUTPUT: spin::Once<fn(fmt::Arguments<'_>)> = spin::Once::new();

    /// Sets where the library's lines go (once; later calls change nothing).
    pub fn set_output(write_line: fn(fmt::Arguments<'_>)) {
        OUTPUT.call_once(|| write_line);
    }

    pub(super) fn line(text: fmt::Arguments<'_>) {
        if let Some(write_line) = OUTPUT.get() {
            write_line(text);
        }
    }

    pub(super) fn fatal(text: fmt::Arguments<'_>) -> ! {
        panic!("{text}")
    }
}
