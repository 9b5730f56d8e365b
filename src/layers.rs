//! Layer: tests. May use: std only. Checks every file's imports against
//! its "Layer:" header, so the headers cannot drift from the code.
//!
//! Each file of `src/` opens with `Layer: <layer>. May use: <list>.`: the
//! layer it belongs to, and every module of this crate it imports, in
//! backticks, as its path from the crate root. This test reads the source
//! as text (comments and strings left out, unit-test modules too), finds
//! each file's imports (`use crate::…`, `use super::…`, a child module's
//! path, and inline `crate::…` and `super::…` paths, a name that `lib.rs`
//! re-exports counting as the module that defines it; a `pub use` of a
//! child module's item is part of declaring that child, as `mod` is, and
//! no import), and checks:
//!
//! - the list is exact: every module imported is listed, and every module
//!   listed is imported;
//! - a layer uses only the layers below it ([`MAY_USE`]);
//! - no two files import each other, through any number of files between.
//!
//! Run it alone with `cargo test --lib layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Which layers each layer may use (besides itself), from the bottom up.
/// The transports' system-call layers sit beneath them, on the core only.
const MAY_USE: &[(&str, &[&str])] = &[
    ("core", &["core"]),
    ("pools", &["core", "pools"]),
    ("remote", &["core", "remote"]),
    ("process sys", &["core", "process sys"]),
    (
        "process",
        &["core", "pools", "remote", "process sys", "process"],
    ),
    ("mpi sys", &["core", "mpi sys"]),
    ("mpi", &["core", "remote", "mpi sys", "mpi"]),
    (
        "entry",
        &["core", "process", "process sys", "mpi", "mpi sys", "entry"],
    ),
    (
        "root",
        &[
            "core",
            "pools",
            "remote",
            "process sys",
            "process",
            "mpi sys",
            "mpi",
            "entry",
            "root",
        ],
    ),
    ("docs", &[]),
];

/// One file of `src/`.
struct File {
    /// Its module path from the crate root: `""` for `lib.rs`,
    /// `"remote::codec"` for `remote/codec.rs`.
    module: String,
    layer: String,
    /// The modules its header lists.
    listed: BTreeSet<String>,
    /// Its code, without comments, strings or unit-test modules.
    code: String,
    /// Paths it names, each as segments from the crate root, with the line
    /// it is on.
    paths: Vec<(Vec<String>, usize)>,
}

// Under miri it would only be slow: it reads text, with no unsafe code.
#[cfg_attr(miri, ignore)]
#[test]
fn every_file_imports_exactly_what_its_header_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut problems = Vec::new();
    for path in rust_files(&root) {
        let text = fs::read_to_string(&path).unwrap();
        let module = module_of(&root, &path);
        let (layer, listed) = header(&text).unwrap_or_else(|why| {
            problems.push(format!("{}: {why}", path.display()));
            // Still a module others may import; its imports are only told.
            ("unknown".to_owned(), BTreeSet::new())
        });
        let code = without_tests(&strip(&text));
        files.insert(
            module.clone(),
            File {
                module,
                layer,
                listed,
                code,
                paths: Vec::new(),
            },
        );
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let exports = reexports(&files[""].code, &modules);
    for file in files.values_mut() {
        file.paths = paths_named(&file.code, &file.module, &modules);
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files.values() {
        if file.layer == "tests" {
            continue;
        }
        let allowed = MAY_USE
            .iter()
            .find(|(layer, _)| *layer == file.layer)
            .map(|(_, uses)| *uses);
        let Some(allowed) = allowed else {
            let imported: BTreeSet<String> = file
                .paths
                .iter()
                .filter_map(|(path, _)| resolve(path, &modules, &exports))
                .filter(|target| *target != file.module)
                .map(|target| format!("`{target}`"))
                .collect();
            let imported: Vec<String> = imported.into_iter().collect();
            problems.push(format!(
                "{}: layer {:?} is none of the layers; it imports {}",
                shown(&file.module),
                file.layer,
                imported.join(", ")
            ));
            continue;
        };
        let imported = edges.entry(file.module.clone()).or_default();
        for (path, line) in &file.paths {
            let Some(target) = resolve(path, &modules, &exports) else {
                problems.push(format!(
                    "{}:{line}: `{}` names no module of the crate",
                    shown(&file.module),
                    path.join("::")
                ));
                continue;
            };
            if target == file.module {
                continue;
            }
            let layer = &files[&target].layer;
            if !allowed.contains(&layer.as_str()) && !imported.contains(&target) {
                problems.push(format!(
                    "{}:{line}: a file of layer {:?} imports `{}`, of layer {layer:?}",
                    shown(&file.module),
                    file.layer,
                    shown(&target)
                ));
            }
            imported.insert(target);
        }
        if file.module.is_empty() {
            // The crate root declares every module and lists none.
            continue;
        }
        for target in imported.iter() {
            if !file.listed.iter().any(|l| l == target) {
                problems.push(format!(
                    "{}: imports `{}`, which its header does not list",
                    shown(&file.module),
                    shown(target)
                ));
            }
        }
        for listed in &file.listed {
            if !modules.contains(listed) {
                problems.push(format!(
                    "{}: its header lists `{listed}`, which is no module",
                    shown(&file.module)
                ));
            } else if !imported.contains(listed) {
                problems.push(format!(
                    "{}: its header lists `{listed}`, which it does not import",
                    shown(&file.module)
                ));
            }
        }
    }
    problems.extend(circles(&edges).into_iter().map(|circle| {
        let names: Vec<String> = circle.iter().map(|m| shown(m)).collect();
        format!("a circle: {}", names.join(" -> "))
    }));
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is `""`.
fn module_of(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// How a module is named in a message.
fn shown(module: &str) -> String {
    match module {
        "" => "lib.rs".to_owned(),
        other => other.to_owned(),
    }
}

/// The header's layer and listed modules.
fn header(text: &str) -> Result<(String, BTreeSet<String>), String> {
    let lines: Vec<&str> = text
        .lines()
        .map_while(|line| {
            let line = line.trim_start();
            line.strip_prefix("//!")
                .or_else(|| line.strip_prefix("//"))
                .map(str::trim)
        })
        .collect();
    let joined = lines.join(" ");
    let rest = joined
        .strip_prefix("Layer: ")
        .ok_or("its first comment does not start with `Layer: `")?;
    let (layer, rest) = rest
        .split_once(". ")
        .ok_or("its layer does not end with a full stop")?;
    // A remark in parentheses may follow the layer's name.
    let layer = layer.split(" (").next().unwrap_or(layer);
    if layer == "docs" {
        return Ok((layer.to_owned(), BTreeSet::new()));
    }
    let rest = rest
        .strip_prefix("May use: ")
        .ok_or("its layer is not followed by `May use: `")?;
    let mut listed = BTreeSet::new();
    // Backticks in parentheses are a remark, not a module.
    let mut quoted = false;
    let mut remark = 0;
    let mut item = String::new();
    for c in rest.chars() {
        match c {
            '`' if quoted => {
                let item = std::mem::take(&mut item);
                if remark == 0 {
                    listed.insert(item);
                }
                quoted = false;
            }
            '`' => quoted = true,
            '(' if !quoted => remark += 1,
            ')' if !quoted => remark -= 1,
            '.' if !quoted && remark == 0 => return Ok((layer.to_owned(), listed)),
            c if quoted => item.push(c),
            _ => {}
        }
    }
    Err("its `May use:` list does not end with a full stop".to_owned())
}

/// `text` with comments, strings and character literals blanked out
/// (newlines kept, so that lines still count).
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(chars.get(i.wrapping_sub(1)).copied())
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                blank(&mut out, chars[j]);
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// `code` without its unit-test modules (a `mod` under a `cfg` that names
/// `test`), blanked out line for line.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());

    let mut skipping: Option<i64> = None;
    let mut test_attribute = false;
    for line in code.lines() {
        if let Some(depth) = skipping.as_mut() {
            *depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
            if *depth <= 0 {
                skipping = None;
            }
            out.push('\n');
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(") && trimmed.contains("test") {
            test_attribute = true;
        } else if test_attribute && trimmed.contains("mod ") && trimmed.ends_with('{') {
            skipping = Some(1);
            test_attribute = false;
            out.push('\n');
            continue;
        } else if !trimmed.starts_with("#[") && !trimmed.is_empty() {
            test_attribute = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The paths `code` names through `crate::`, `super::`, `self::` or a child
/// module of `module`, each from the crate root, with its line.
fn paths_named(code: &str, module: &str, modules: &BTreeSet<String>) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    let here: Vec<String> = split(module);
    // The inline modules (`mod sys { … }`) around each point of the code.
    let mut inline: Vec<(String, i64)> = Vec::new();
    let mut depth: i64 = 0;
    // A `use` over several lines, gathered up to its `;`.
    let mut gathering: Option<(String, usize)> = None;
    for (number, line) in code.lines().enumerate() {
        let trimmed = line.trim_start();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "mod")
            && words.get(at + 2) == Some(&"{")
        {
            inline.push((words[at + 1].to_owned(), depth + 1));
        }
        let mut scope = here.clone();
        scope.extend(inline.iter().map(|(name, _)| name.clone()));
        let mut statement = None;
        if let Some((text, first)) = gathering.as_mut() {
            text.push(' ');
            text.push_str(trimmed);
            if trimmed.contains(';') {
                statement = Some((std::mem::take(text), *first));
                gathering = None;
            }
        } else if !use_paths(trimmed).is_empty() && !trimmed.contains(';') {
            gathering = Some((trimmed.to_owned(), number + 1));
        } else {
            statement = Some((trimmed.to_owned(), number + 1));
        }
        if let Some((text, at)) = statement {
            // `pub use child::Item` shows a child's item as this module's
            // own: part of declaring the child, as `mod child;` is.
            let face = text.starts_with("pub");
            for path in use_paths(&text).into_iter().chain(inline_paths(&text)) {
                if let Some(path) = absolute(&path, &scope, here.len(), modules)
                    && !(face && path.len() > here.len() && path.starts_with(&here))
                {
                    found.push((path, at));
                }
            }
        }
        depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
        while inline.last().is_some_and(|(_, at)| depth < *at) {
            inline.pop();
        }
    }
    found
}

fn split(module: &str) -> Vec<String> {
    module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The full paths of a `use` line's tree (`use a::{b, c::{d, e}};`), or
/// none for another line. A `use` over several lines is read from its
/// first (the crate's `use` trees fit one line after rustfmt, or repeat
/// the module on each).
fn use_paths(line: &str) -> Vec<Vec<String>> {
    let line = line
        .strip_prefix("pub(crate) ")
        .or_else(|| line.strip_prefix("pub(super) "))
        .or_else(|| line.strip_prefix("pub "))
        .unwrap_or(line);
    let Some(tree) = line.strip_prefix("use ") else {
        return Vec::new();
    };
    let tree: String = tree.chars().take_while(|c| *c != ';').collect();
    let mut out = Vec::new();
    expand(&tree, Vec::new(), &mut out);
    out
}

/// Expands one use tree below `prefix`.
fn expand(tree: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut base = prefix;
        base.extend(split(tree[..open].trim_end_matches("::")));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], base.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], base, out);
    } else if !tree.is_empty() {
        let name = tree.split(" as ").next().unwrap_or(tree).trim();
        let mut path = prefix;
        path.extend(split(name).into_iter().filter(|s| s != "self" && s != "*"));
        if !path.is_empty() {
            out.push(path);
        }
    }
}

/// The `crate::…`, `super::…` and `name::…` paths of a line that is no
/// `use` (a child module's name is told from other names later).
fn inline_paths(line: &str) -> Vec<Vec<String>> {
    if line.starts_with("use ") || line.contains(" use ") {
        return Vec::new();
    }
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_alphabetic() || chars[i] == '_';
        let after_path = i > 0 && (ident_char(Some(chars[i - 1])) || chars[i - 1] == ':');
        if !starts || after_path {
            i += 1;
            continue;
        }
        let mut path = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while ident_char(chars.get(j).copied()) {
                j += 1;
            }
            path.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':')
                && chars.get(j + 1) == Some(&':')
                && ident_char(chars.get(j + 2).copied())
            {
                j += 2;
            } else {
                break;
            }
        }
        if path.len() > 1 {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

/// `path` from the crate root, as seen from a point inside `scope` (the
/// file's module, then its inline modules; the file's module has
/// `file_depth` segments), or `None` for a path outside the crate.
fn absolute(
    path: &[String],
    scope: &[String],
    file_depth: usize,
    modules: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = scope.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super" | "self") => {
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        Some(first) => {
            // A child module of this file's module (not of an inline one).
            let mut child = scope[..file_depth].to_vec();
            child.push(first.to_owned());
            if !modules.contains(&child.join("::")) {
                return None;
            }
            base = scope[..file_depth].to_vec();
        }
        None => return None,
    }
    // Inline modules are part of their file.
    base.truncate(file_depth.min(base.len()));
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The names `lib.rs` re-exports, each with the module that defines it.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut statement = String::new();
    for line in lib.lines() {
        let line = line.trim_start();
        if statement.is_empty() && !line.starts_with("pub use ") {
            continue;
        }
        statement.push_str(line);
        statement.push(' ');
        if !line.contains(';') {
            continue;
        }
        for path in use_paths(&std::mem::take(&mut statement)) {
            if let Some(target) = longest_module(&path, modules)
                && let Some(name) = path.last()
            {
                out.insert(name.clone(), target);
            }
        }
    }
    out
}

/// The longest prefix of `path` that is a module of the crate, if any but
/// the root is.
fn longest_module(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// The file a path from the crate root lands in.
fn resolve(
    path: &[String],
    modules: &BTreeSet<String>,
    exports: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some(module) = longest_module(path, modules) {
        return Some(module);
    }
    match path.first() {
        Some(name) => exports.get(name).cloned().or(Some(String::new())),
        None => Some(String::new()),
    }
}

/// Every circle of `edges`, each once, as the modules along it (the first
/// again at the end).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components; a component of more than one
    // file holds a circle, shown along one path through it.
    struct State<'e> {
        edges: &'e BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'e str, usize>,
        low: BTreeMap<&'e str, usize>,
        stack: Vec<&'e str>,
        on_stack: BTreeSet<&'e str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'e>(s: &mut State<'e>, node: &'e str) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.edges.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                let first = component[0].clone();
                component.push(first);
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[cfg_attr(miri, ignore)]
#[test]
fn the_reader_finds_imports_in_every_form() {
    let modules: BTreeSet<String> = ["", "a", "a::b", "a::c", "d"].map(str::to_owned).into();
    let code = without_tests(&strip(
        "use crate::{d, a::{b::X, c}};\n\
         use super::c::Y; // use crate::nothing\n\
         fn f() { let s = \"crate::a::c\"; b::g(); crate::d::h(); }\n\
         mod sys {\n    use super::super::d::Z;\n}\n\
         #[cfg(test)]\nmod tests {\n    use crate::a::c::T;\n}\n",
    ));
    let found: Vec<String> = paths_named(&code, "a::b", &modules)
        .into_iter()
        .map(|(p, line)| format!("{line}:{}", p.join("::")))
        .collect();
    assert_eq!(
        found,
        [
            "1:d",
            "1:a::b::X",
            "1:a::c",
            "2:a::c::Y",
            "3:d::h",
            "5:a::d::Z"
        ]
    );
    // A parent's `pub use` of its child is part of declaring it.
    let parent = strip("pub(crate) use b::X;\nuse c::Y;\n");
    let found: Vec<String> = paths_named(&parent, "a", &modules)
        .into_iter()
        .map(|(p, _)| p.join("::"))
        .collect();
    assert_eq!(found, ["a::c::Y"]);
    let (layer, listed) =
        header("//! Layer: core. May use: `a::b`, std and\n//! `d`. Then prose.\n").unwrap();
    assert_eq!(layer, "core");
    assert_eq!(listed, ["a::b", "d"].map(str::to_owned).into());
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
        ("d".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(
        circles(&edges),
        [["a", "b", "c", "a"].map(str::to_owned).to_vec()]
    );
}
