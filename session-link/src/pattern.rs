//! The one pattern language the relay's policies and the agent's forward rules share: `*`
//! stands for any run of characters, and every other character for itself.

/// Whether `name` matches `pattern`. Linear in practice: on a mismatch only the most recent `*`
/// is retried.
pub fn glob(pattern: &str, name: &str) -> bool {
    glob_bytes(pattern.as_bytes(), name.as_bytes())
}

/// [`glob`] over bytes, for names that need not be UTF-8 (file paths).
pub fn glob_bytes(p: &[u8], n: &[u8]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&pc) if pc == c => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn a_star_stands_for_any_run_and_the_rest_for_itself() {
        for (pattern, name) in [
            ("*", ""),
            ("*", "web-1"),
            ("web-*", "web-1"),
            ("*.internal", "db.internal"),
            ("a*b*c", "axxbyyc"),
            ("i-001*", "i-0017"),
            ("exact", "exact"),
            ("**", "x"),
        ] {
            assert!(glob(pattern, name), "{pattern} ~ {name}");
        }
        for (pattern, name) in [
            ("web-*", "db-1"),
            ("i-001*", "i-002"),
            ("a*b", "ab c"),
            ("exact", "exactly"),
            ("", "x"),
            ("x", ""),
        ] {
            assert!(!glob(pattern, name), "{pattern} !~ {name}");
        }
        // Bytes that are not UTF-8 are bytes like any other; `*` spans `/`.
        assert!(super::glob_bytes(b"/a/*", b"/a/\xff\x00/b"));
        assert!(!super::glob_bytes(b"/a/*", b"/a"));
    }
}
