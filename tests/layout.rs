//! The folders of `src/` stay free of circles: no two files of one folder import each other
//! (a file may use a sibling that does not use it back). Read from the source itself, so a
//! new import that closes a circle fails here with the two files and lines named.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Folders whose circles another branch removes; each entry must still have one, so the
/// list cannot outlive its reason.
const ALLOWED: &[&str] = &[];

/// One use of a sibling: which module, on which line of the using file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    line: usize,
}

/// The code with every comment and every string or char literal blanked to spaces (newlines
/// kept), so neither can look like an import and byte offsets still give line numbers.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"'))
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                let end = src[start..].find(&close).map_or(b.len(), |n| start + n);
                blank(&mut out, start, end);
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '"', '\n', '\u{1F600}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let end = src[i + 2..].find('\'').map_or(b.len(), |n| i + 2 + n);
                    blank(&mut out, i + 1, end);
                    i = end + 1;
                } else {
                    let ch = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + ch) == Some(&b'\'') {
                        blank(&mut out, i + 1, i + 1 + ch);
                        i += 2 + ch;
                    } else {
                        i += 1;
                    }
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The code without its `#[cfg(test)]` modules: inside them `super` is the file itself.
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(n) = out[from..].find("#[cfg(test)]") {
        let at = from + n;
        let rest = out[at + "#[cfg(test)]".len()..].trim_start();
        let Some(open) = rest
            .strip_prefix("mod ")
            .and_then(|_| out[at..].find('{'))
            .map(|o| at + o)
        else {
            from = at + 1;
            continue;
        };
        let mut depth = 0;
        let mut end = out.len();
        for (k, c) in out[open..].bytes().enumerate() {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blanked: String = out[at..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..end, &blanked);
        from = end;
    }
    out
}

/// The first segment of every path a `prefix` (`super::`, `crate::mock::`) starts, with the
/// byte offset it was found at: `super::{a::X, b}` gives `a` and `b`.
fn heads(code: &str, prefix: &str) -> Vec<(String, usize)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(n) = code[from..].find(prefix) {
        let at = from + n;
        from = at + prefix.len();
        // `super::super::x` and `foo::super::x` are not the parent's children.
        let glued = at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b':');
        if glued || code[from..].starts_with("super::") {
            continue;
        }
        let rest = &code[from..];
        if rest.starts_with('{') {
            let mut depth = 0;
            let mut first = true;
            for (k, c) in rest.char_indices() {
                match c {
                    '{' => {
                        depth += 1;
                        first = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => first = true,
                    c if c.is_whitespace() => {}
                    _ if first && depth == 1 => {
                        let name: String = rest[k..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            found.push((name, from + k));
                        }
                        first = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((name, from));
            }
        }
    }
    found
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].bytes().filter(|c| *c == b'\n').count() + 1
}

fn read_code(path: &Path) -> String {
    let src = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    without_tests(&code_only(&src))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The imports between the child modules of the folder `dir` (which has a `mod.rs`);
/// `crate_path` is how the crate names it (`crate::mock`). A name the folder's `mod.rs`
/// re-exports (`pub use stats::MockStats`) counts as a use of the module it comes from.
fn folder_edges(dir: &Path, crate_path: &str) -> Vec<Edge> {
    let root = read_code(&dir.join("mod.rs"));
    let mut modules = BTreeSet::new();
    for line in root.lines().map(str::trim) {
        let line = line
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            modules.insert(name.trim().to_string());
        }
    }
    let mut reexported = BTreeMap::new();
    for stmt in root.split(';').map(str::trim) {
        let Some(path) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let module: String = path.chars().take_while(|c| *c != ':').collect();
        if !modules.contains(module.trim()) {
            continue;
        }
        let names = path
            .split(['{', '}', ',', ':'])
            .filter_map(|part| part.split_whitespace().last())
            .filter(|n| *n != "self");
        for name in names {
            reexported.insert(name.to_string(), module.trim().to_string());
        }
    }
    let target = |name: &str| {
        if modules.contains(name) {
            Some(name.to_string())
        } else {
            reexported.get(name).cloned()
        }
    };
    let mut edges = BTreeSet::new();
    for module in &modules {
        let (own, inner): (PathBuf, Vec<PathBuf>) = if dir.join(module).is_dir() {
            (
                dir.join(module).join("mod.rs"),
                rust_files(&dir.join(module)),
            )
        } else {
            (dir.join(format!("{module}.rs")), Vec::new())
        };
        let mut found = Vec::new();
        let code = read_code(&own);
        for (name, at) in heads(&code, "super::") {
            found.push((name, line_of(&code, at), own.clone()));
        }
        // A file anywhere under a module folder that names the folder by its crate path
        // makes that module depend on the sibling it names.
        for file in std::iter::once(own.clone()).chain(inner) {
            let code = read_code(&file);
            for (name, at) in heads(&code, &format!("{crate_path}::")) {
                found.push((name, line_of(&code, at), file.clone()));
            }
        }
        for (name, line, _) in found {
            if let Some(to) = target(&name).filter(|t| t != module) {
                edges.insert(Edge {
                    from: module.clone(),
                    to,
                    line,
                });
            }
        }
    }
    edges.into_iter().collect()
}

/// Every pair of modules that import each other, described with the lines that do it.
fn circles(edges: &[Edge]) -> Vec<String> {
    let mut pairs = Vec::new();
    for a in edges {
        if a.from >= a.to {
            continue;
        }
        if let Some(b) = edges.iter().find(|b| b.from == a.to && b.to == a.from) {
            let pair = format!(
                "{} uses {} (line {}) and {} uses {} (line {})",
                a.from, a.to, a.line, b.from, b.to, b.line
            );
            if !pairs
                .iter()
                .any(|p: &String| p.starts_with(&format!("{} uses {} ", a.from, a.to)))
            {
                pairs.push(pair);
            }
        }
    }
    pairs
}

/// Every folder under `src` that is a module folder, with its crate path.
fn module_folders(src: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for file in rust_files(src) {
        if file.file_name().is_some_and(|n| n == "mod.rs") {
            let dir = file.parent().expect("mod.rs has a folder").to_path_buf();
            let rel = dir.strip_prefix(src).expect("under src");
            let path = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("::");
            out.push((dir, format!("crate::{path}")));
        }
    }
    out
}

#[test]
fn no_two_files_of_a_src_folder_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let folders = module_folders(&src);
    assert!(
        folders.len() >= 7,
        "found only {} module folders under {}",
        folders.len(),
        src.display()
    );
    let mut problems = Vec::new();
    let mut imports = 0;
    for (dir, crate_path) in &folders {
        let name = crate_path.trim_start_matches("crate::");
        let edges = folder_edges(dir, crate_path);
        imports += edges.len();
        let found = circles(&edges);
        match (ALLOWED.contains(&name), found.is_empty()) {
            (false, false) => problems.push(format!("src/{name}: {}", found.join("; "))),
            (true, true) => problems.push(format!(
                "src/{name} has no circle any more: remove it from ALLOWED in tests/layout.rs"
            )),
            _ => {}
        }
    }
    // gauntlet's folders hold well over a hundred such imports; far fewer means the parser
    // stopped seeing them.
    assert!(
        imports > 100,
        "only {imports} imports between sibling files found"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_circle_is_found_and_named_but_comments_strings_and_tests_are_not_imports() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let files = [
        (
            "mod.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\npub use c::{Thing, other as Renamed};\n",
        ),
        // a -> b directly, b -> a through a group: a circle.
        ("a.rs", "use super::b::X;\nfn f() { let _ = '\"'; }\n"),
        (
            "b.rs",
            "use std::fmt;\nuse super::{\n    a::{Y, Z},\n    d,\n};\n",
        ),
        // c -> a only in a comment, a string and its tests: no circle with a.
        (
            "c.rs",
            "// use super::a::X;\nconst S: &str = \"super::a::X\";\nconst R: &str = r#\"super::a\"#;\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    fn t() { super::super::a::f(); }\n}\n",
        ),
        // d -> c through a re-export and the crate path: a circle with c only if c used d.
        ("d.rs", "fn g() -> crate::x::Renamed { todo!() }\n"),
    ];
    for (name, text) in files {
        fs::write(dir.path().join(name), text).expect("write a source file");
    }
    let edges = folder_edges(dir.path(), "crate::x");
    let pairs: Vec<(&str, &str)> = edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(pairs, [("a", "b"), ("b", "a"), ("b", "d"), ("d", "c")]);
    assert_eq!(circles(&edges), ["a uses b (line 1) and b uses a (line 3)"]);

    // Once c really uses d, that pair is named too.
    fs::write(dir.path().join("c.rs"), "use super::d::g;\n").expect("write c.rs");
    let found = circles(&folder_edges(dir.path(), "crate::x"));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[1].starts_with("c uses d (line 1) and d uses c (line 1)"));
}

/// Type names still declared twice in `src/`, each with why; each entry must still be
/// declared twice, so the list only shrinks.
const SHARED_NAMES: &[(&str, &str)] = &[
    (
        "Args",
        "one per subcommand in src/cmd, named by its module (cmd::run::Args)",
    ),
    (
        "Target",
        "gateway route target vs the scenario's system under test (scenario branch)",
    ),
    (
        "RawTarget",
        "their TOML shapes (gateway config, scenario file)",
    ),
    (
        "Upstream",
        "the gateway's live upstream vs the scenario's declared one (scenario branch)",
    ),
    (
        "RawUpstream",
        "their TOML shapes (gateway config, scenario file)",
    ),
];

/// Every type, trait or alias declared at the top level of a file under `src`, with where.
fn declared_types(src: &Path) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let code = read_code(&file);
        for (n, line) in code.lines().enumerate() {
            // Column 0 only: associated types in impls and items of test modules are indented.
            let mut rest = line;
            for vis in ["pub(crate) ", "pub(super) ", "pub "] {
                rest = rest.strip_prefix(vis).unwrap_or(rest);
            }
            let Some(rest) = ["struct ", "enum ", "trait ", "type "]
                .iter()
                .find_map(|kw| rest.strip_prefix(kw))
            else {
                continue;
            };
            let name: String = rest.chars().take_while(|c| is_ident(*c as u8)).collect();
            let at = file.strip_prefix(src).unwrap_or(&file).display();
            names
                .entry(name)
                .or_default()
                .push(format!("src/{at}:{}", n + 1));
        }
    }
    names
}

#[test]
fn no_two_types_in_src_share_a_name() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let names = declared_types(&src);
    assert!(
        names.contains_key("Summary") && names.contains_key("MockState"),
        "the declaration scan found neither Summary nor MockState"
    );
    let mut problems = Vec::new();
    for (name, places) in &names {
        let allowed = SHARED_NAMES.iter().any(|(n, _)| n == name);
        if places.len() > 1 && !allowed {
            problems.push(format!(
                "{name} names {} things: {}",
                places.len(),
                places.join(", ")
            ));
        }
    }
    for (name, _) in SHARED_NAMES {
        if names.get(*name).is_none_or(|p| p.len() < 2) {
            problems.push(format!(
                "{name} is declared once now: remove it from SHARED_NAMES in tests/layout.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
