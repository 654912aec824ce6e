//! Repository tidiness checks, run over the source text of every workspace crate:
//!
//! 1. Every Rust source file starts with a `//!` doc comment saying what it owns (see
//!    ARCHITECTURE.md), so a newcomer can read the code map file by file.
//! 2. No import cycles between files: a file that imports a file that (directly or through
//!    others) imports it back cannot be read, tested or moved on its own. The check reads text,
//!    not the compiler's view, so its rules are simple and explicit:
//!    - Crates: every directory under the repository root with a `Cargo.toml` and a `src/`
//!      (not under `vendor`, `target`, `fuzz`); only the files under `src/` count.
//!    - Module of a file: `lib.rs` and `main.rs` are the root; `a.rs` and `a/mod.rs` are `a`;
//!      `a/b.rs` is `a::b`.
//!    - An edge file -> file comes from a `crate::…` or `super::…` path (`super` is the parent
//!      of the file's module), in a `use` (brace groups expanded) or inline in code. It goes to
//!      the deepest module the path names; if the next segment is a name that module's file does
//!      not define (as `struct`, `enum`, `fn`, `const`, `static`, `type`, `trait`, `mod` or
//!      `macro_rules!`) but exactly one file below it does, the edge goes to that file instead:
//!      a re-export is a module's face, not a dependency.
//!    - Not edges: `pub use` and `pub(…) use` (the re-exports themselves), `mod x;`, a file's
//!      paths to itself, and `#[cfg(test)]` items (skipped up to their `;` or their closing `}`
//!      at the same indentation). Comments are dropped and string, raw string and char literals
//!      emptied first, so `crate::` in them counts for nothing. `super` in an inline
//!      `mod x { … }` leaves that block first.
//!    - A cycle is a strongly connected component of more than one file (Kosaraju's algorithm);
//!      the test lists each with its files and, per edge, the path and line that made it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("read a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            // `vendor`: upstream code we patch (learner/vendor/openraft), kept in its own style.
            if !matches!(name, "target" | ".git" | "corpus" | "artifacts" | "vendor") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for crate_dir in ["config", "overlay", "proto", "agent", "learner", "loadtest"] {
        let dir = root.join(crate_dir);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
    }
    assert!(files.len() > 10, "found only {} Rust files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("read a Rust file");
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a `//!` doc comment: {missing:#?}"
    );
}

/// A source file as the cycle check sees it.
struct SourceFile {
    /// Path from the repository root, for messages.
    name: String,
    krate: usize,
    module: Vec<String>,
    /// `(token, line)` of its code, see [`tokens`].
    tokens: Vec<(String, usize)>,
    /// Names it defines (`struct X`, `fn x`, `macro_rules! x`, …).
    defs: BTreeSet<String>,
}

/// The crate directories (holding `Cargo.toml` and `src/`) at or below `dir`.
fn crate_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
        out.push(dir.to_path_buf());
    }
    for entry in std::fs::read_dir(dir).expect("read a directory") {
        let path = entry.expect("read a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let skip = matches!(name, "vendor" | "target" | "fuzz" | "src") || name.starts_with('.');
        if path.is_dir() && !skip {
            crate_dirs(&path, out);
        }
    }
}

/// `lib.rs` and `main.rs` are the root module, `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
fn module_of(path_in_src: &Path) -> Vec<String> {
    let names = path_in_src.with_extension("");
    let mut module: Vec<String> = names.iter().map(|s| s.to_string_lossy().into()).collect();
    if module == ["lib"] || module == ["main"] || module.last().is_some_and(|s| s == "mod") {
        module.pop();
    }
    module
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The text without `#[cfg(test)]` items and comments, with string and char literals emptied;
/// line numbers are kept.
fn code_of(text: &str) -> String {
    let (mut kept, mut test_item) = (String::new(), None); // the indentation of a test item
    for line in text.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if test_item == Some(indent) && !line.trim_start().starts_with("#[") {
            test_item = (!line.trim_end().ends_with([';', '}'])).then_some(indent);
        } else if test_item.is_none() && line.trim() == "#[cfg(test)]" {
            test_item = Some(indent);
        } else if test_item.is_none() {
            kept.push_str(line);
        }
        kept.push('\n');
    }
    let chars: Vec<char> = kept.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\n');
    // The index after `close`, searched from `i`, skipping `\`-escapes if `escapes`.
    let end_of = |mut i: usize, close: &[char], escapes: bool| {
        while i < chars.len() && !chars[i..].starts_with(close) {
            i += if escapes && chars[i] == '\\' { 2 } else { 1 };
        }
        chars.len().min(i + close.len())
    };
    let (mut code, mut i) = (String::new(), 0);
    while i < chars.len() {
        let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
        let raw =
            chars[i] == 'r' && at(i + 1 + hashes) == '"' && !is_ident_char(at(i.wrapping_sub(1)));
        let (end, blank) = match (chars[i], at(i + 1), at(i + 2)) {
            ('/', '/', _) => (end_of(i, &['\n'], false) - 1, ""),
            ('/', '*', _) => (end_of(i + 2, &['*', '/'], false), " "),
            ('"', _, _) => (end_of(i + 1, &['"'], true), "\"\""),
            ('r', _, _) if raw => {
                let close: Vec<char> = std::iter::once('"').chain(vec!['#'; hashes]).collect();
                (end_of(i + 2 + hashes, &close, false), "\"\"")
            }
            ('\'', '\\', _) => (end_of(i + 3, &['\''], false), "' '"),
            ('\'', _, '\'') => (i + 3, "' '"), // a char literal such as '"', not a lifetime 'a
            (c, _, _) => {
                code.push(c);
                i += 1;
                continue;
            }
        };
        code.push_str(blank);
        code.extend(chars[i..end].iter().filter(|&&c| c == '\n'));
        i = end;
    }
    code
}

/// Identifiers, `::` and single punctuation characters, each with its line number.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line.trim_start();
        while let Some(c) = rest.chars().next() {
            let len = match c {
                _ if is_ident_char(c) => rest.find(|c| !is_ident_char(c)).unwrap_or(rest.len()),
                ':' if rest.starts_with("::") => 2,
                _ => c.len_utf8(),
            };
            out.push((rest[..len].to_string(), n + 1));
            rest = rest[len..].trim_start();
        }
    }
    out
}

/// Reads the path (or use tree, its brace groups expanded) at `tokens[i]` into `out`, each path
/// after `prefix`; returns the index after it.
fn read_path(
    tokens: &[(String, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let token = |i: usize| tokens.get(i).map_or("", |(t, _)| t.as_str());
    loop {
        match token(i) {
            "{" => {
                i += 1;
                while !matches!(token(i), "}" | "") {
                    i = read_path(tokens, i, prefix.clone(), out);
                    i += usize::from(token(i) == ",");
                }
                return i + 1;
            }
            t if t == "*" || t.starts_with(|c: char| c.is_alphabetic() || c == '_') => {
                prefix.push(t.to_string());
                if token(i + 1) != "::" {
                    out.push(prefix);
                    return if token(i + 1) == "as" { i + 3 } else { i + 1 };
                }
                i += 2;
            }
            _ => return i,
        }
    }
}

/// The `crate::…`/`super::…` paths of a file that can make an edge: `(segments, line, number of
/// inline `mod x { … }` blocks it is written in)`.
fn crate_paths(tokens: &[(String, usize)]) -> Vec<(Vec<String>, usize, usize)> {
    let token = |i: usize| tokens.get(i).map_or("", |(t, _)| t.as_str());
    let (mut out, mut i) = (Vec::new(), 0);
    let (mut depth, mut inline) = (0, Vec::new()); // brace depth, that of each inline module
    while i < tokens.len() {
        let (back, line) = (|k: usize| token(i.wrapping_sub(k)), tokens[i].1);
        match token(i) {
            "{" => {
                depth += 1;
                if back(2) == "mod" {
                    inline.push(depth);
                }
            }
            "}" => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "use" if back(1) == "pub" || (back(1) == ")" && back(4) == "pub") => {
                i = (i..tokens.len()).find(|&j| token(j) == ";").unwrap_or(i); // a re-export
            }
            "crate" | "super" if back(1) != "::" => {
                let mut paths = Vec::new();
                i = read_path(tokens, i, Vec::new(), &mut paths);
                out.extend(paths.into_iter().map(|path| (path, line, inline.len())));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.retain(|(path, _, _)| path.len() > 1);
    out
}

/// The file that `path`, written in file `from` in `inline` inline modules, depends on (see the
/// module doc).
fn resolve(
    files: &[SourceFile],
    modules: &HashMap<(usize, Vec<String>), usize>,
    from: usize,
    (path, inline): (&[String], usize),
) -> Option<usize> {
    let krate = files[from].krate;
    let (mut module, mut rest) = (files[from].module.clone(), path);
    module.extend(vec![String::from("{inline}"); inline]);
    if rest[0] == "crate" {
        (module, rest) = (Vec::new(), &rest[1..]);
    }
    while rest.first().is_some_and(|s| s == "super") {
        module.pop()?;
        rest = &rest[1..];
    }
    while !modules.contains_key(&(krate, module.clone())) {
        module.pop()?; // out of inline modules, to the file they are written in
    }
    while let Some(next) = rest.first() {
        let deeper = [module.as_slice(), std::slice::from_ref(next)].concat();
        if !modules.contains_key(&(krate, deeper.clone())) {
            break;
        }
        (module, rest) = (deeper, &rest[1..]);
    }
    let target = modules[&(krate, module.clone())];
    let Some(name) = rest
        .first()
        .filter(|name| !files[target].defs.contains(*name))
    else {
        return Some(target);
    };
    let definers: Vec<usize> = (0..files.len())
        .filter(|&f| files[f].krate == krate && files[f].module.starts_with(&module))
        .filter(|&f| files[f].defs.contains(name))
        .collect();
    match definers[..] {
        [definer] => Some(definer),
        _ => Some(target),
    }
}

/// Names defined in these tokens, see [`SourceFile::defs`].
fn definitions(tokens: &[(String, usize)]) -> BTreeSet<String> {
    let keywords = [
        "struct", "enum", "fn", "const", "static", "type", "trait", "mod",
    ];
    let mut defs = BTreeSet::new();
    for window in tokens.windows(3) {
        let [first, second, third] = [0, 1, 2].map(|k| window[k].0.as_str());
        if keywords.contains(&first) {
            defs.insert(second.to_string());
        } else if first == "macro_rules" && second == "!" {
            defs.insert(third.to_string());
        }
    }
    defs
}

/// The strongly connected components of the graph `next` (node -> successors), by Kosaraju:
/// nodes in order of finished depth-first search, then searched again backwards, last first.
fn components(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    fn search(graph: &[Vec<usize>], v: usize, seen: &mut [bool], finished: &mut Vec<usize>) {
        if !std::mem::replace(&mut seen[v], true) {
            graph[v]
                .iter()
                .for_each(|&w| search(graph, w, seen, finished));
            finished.push(v);
        }
    }
    let mut back = vec![Vec::new(); next.len()];
    for (v, ws) in next.iter().enumerate() {
        ws.iter().for_each(|&w| back[w].push(v));
    }
    let (mut seen, mut order) = (vec![false; next.len()], Vec::new());
    (0..next.len()).for_each(|v| search(next, v, &mut seen, &mut order));
    let mut seen = vec![false; next.len()];
    let mut components = Vec::new();
    for &v in order.iter().rev() {
        let mut component = Vec::new();
        search(&back, v, &mut seen, &mut component);
        components.push(component);
    }
    components
}

#[test]
fn no_import_cycles_between_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root");
    let mut crates = Vec::new();
    crate_dirs(&root, &mut crates);
    crates.sort();
    assert!(
        crates.len() >= 12,
        "found only {} crates: {crates:?}",
        crates.len()
    );

    let (mut files, mut modules) = (Vec::new(), HashMap::new());
    for (krate, dir) in crates.iter().enumerate() {
        let src = dir.join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        paths.sort();
        for path in paths {
            let module = module_of(path.strip_prefix(&src).expect("a file under src/"));
            // With both, `crate::` names `lib.rs` (a binary reaches its library by name).
            if !(path.ends_with("src/main.rs") && src.join("lib.rs").is_file()) {
                modules.insert((krate, module.clone()), files.len());
            }
            let tokens = tokens(&code_of(
                &std::fs::read_to_string(&path).expect("read a Rust file"),
            ));
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let defs = definitions(&tokens);
            files.push(SourceFile {
                name,
                krate,
                module,
                tokens,
                defs,
            });
        }
    }

    let mut edges = BTreeMap::new(); // (from, to) -> where the first path making it is written
    for from in 0..files.len() {
        for (path, line, inline) in crate_paths(&files[from].tokens) {
            if let Some(to) =
                resolve(&files, &modules, from, (&path, inline)).filter(|&to| to != from)
            {
                let why = format!("{}:{line} `{}`", files[from].name, path.join("::"));
                edges.entry((from, to)).or_insert(why);
            }
        }
    }
    assert!(
        edges.len() > 50,
        "found only {} import edges: is the checker broken?",
        edges.len()
    );

    let mut next = vec![Vec::new(); files.len()];
    edges.keys().for_each(|&(from, to)| next[from].push(to));
    let mut report = String::new();
    let mut cycles: Vec<Vec<usize>> = components(&next)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    cycles.iter_mut().for_each(|cycle| cycle.sort());
    cycles.sort(); // files are numbered in path order, so this is too
    for cycle in cycles {
        report += &format!("\nimport cycle between {} files:\n", cycle.len());
        for &f in &cycle {
            report += &format!("  {}\n", files[f].name);
        }
        report += " because:\n";
        for ((from, to), why) in &edges {
            if cycle.contains(from) && cycle.contains(to) {
                report += &format!("  {why} -> {}\n", files[*to].name);
            }
        }
    }
    assert!(
        report.is_empty(),
        "files import each other in a loop; break each cycle:{report}"
    );
}
