//! Console printing: `print!`/`println!` format into a buffer and hand it to the kernel in one write,
//! so lines from different processes never interleave mid-line.

use alloc::string::String;
use core::fmt::Write;

/// Formats `args` into one string (what `print!` sends in a single console write).
pub fn render(args: core::fmt::Arguments) -> String {
    let mut s = String::new();
    let _ = s.write_fmt(args);
    s
}

/// Sends `args` to the console in one write. Errors are dropped: there is nowhere else to report.
pub fn print(args: core::fmt::Arguments) {
    let s = render(args);
    let _ = crate::sys::console_write(s.as_bytes());
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::fmt::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::fmt::print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_formats_the_whole_line() {
        assert_eq!(render(format_args!("{} + {} = {}\n", 1, 2, 3)), "1 + 2 = 3\n");
    }
}

/// The line a test check prints; the QEMU harness counts these.
pub fn check_line(ok: bool, what: core::fmt::Arguments) -> String {
    render(format_args!("CHECK {} {}\n", if ok { "PASS" } else { "FAIL" }, what))
}

/// Prints a `CHECK PASS`/`CHECK FAIL` line and returns `ok`.
pub fn check(ok: bool, what: core::fmt::Arguments) -> bool {
    let _ = crate::sys::console_write(check_line(ok, what).as_bytes());
    ok
}

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn check_lines_are_what_the_harness_parses() {
        assert_eq!(check_line(true, format_args!("a: {}", 1)), "CHECK PASS a: 1\n");
        assert_eq!(check_line(false, format_args!("b")), "CHECK FAIL b\n");
    }
}
