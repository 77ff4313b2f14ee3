//! The layering of `src/` (issue 10, item 4), checked on the source: a module may use modules
//! of its own layer or of a lower one, never a higher one (`docs/architecture.md`, *Layers*).
//! Reads every `crate::…` path outside comments and `#[cfg(test)]` code; a new top-level
//! module must be given a layer here.

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules of `src/` by layer, lowest first.
const LAYERS: &[&[&str]] = &[
    // Pure values and helpers: no I/O, no configuration; and the metrics every layer records
    // to (names and recording functions over the `metrics` crate's global recorder).
    &["domain", "secret", "metrics"],
    // Storage, and the error vocabulary over it.
    &["db", "error"],
    // Settings and logging.
    &["config", "telemetry"],
    // Cross-cutting services every domain service records to or counts with.
    &["audit", "limits", "mail"],
    // Domain services.
    &[
        "accounts",
        "clients",
        "groups",
        "scheduler",
        "upstream",
        "discord",
    ],
    // OpenID Connect: keys, claims, RP-initiated logout planning.
    &["oidc"],
    // The OAuth protocol core (mints ID tokens through `oidc`).
    &["oauth"],
    // The composition root of the services, and the jobs that use them.
    &["services", "maintenance"],
    // What uses the services: the web layer and the demo.
    &["routes", "demo"],
    // Entry points.
    &["startup", "cli"],
];

/// `#[macro_export]` macros live at the crate root; these are `db`'s.
const MACROS: &[(&str, &str)] = &[("per_backend", "db"), ("load_locked", "db")];

/// Test-only modules, outside the layering.
const TEST_ONLY: &[&str] = &["properties"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` named in `source` outside comments and test code.
fn used_modules(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut used = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                let module = MACROS
                    .iter()
                    .find(|(mac, _)| *mac == name)
                    .map_or(name, |(_, module)| (*module).to_owned());
                used.insert(module);
            }
        }
    }
    used
}

#[test]
fn no_module_uses_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .expect("a component")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" || TEST_ONLY.contains(&top.as_str()) {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            problems.push(format!("{top} (src/{}) has no layer", relative.display()));
            continue;
        };
        let source = std::fs::read_to_string(file).expect("readable");
        for used in used_modules(&source) {
            if used == top || TEST_ONLY.contains(&used.as_str()) {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer > own => problems.push(format!(
                    "src/{} ({top}, layer {own}) uses crate::{used} (layer {layer})",
                    relative.display()
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "src/{} uses crate::{used}, which has no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_back_edge() {
    // The reader itself: comments and test code do not count, code does.
    let used = used_modules(
        "//! see crate::routes\nuse crate::db::Db;\nfn f() { crate::oauth::x(); }\n#[cfg(test)]\nuse crate::startup;\n",
    );
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        vec!["db".to_owned(), "oauth".to_owned()]
    );
    assert!(layer_of("oauth") > layer_of("db"));
}

/// The module path of a file under `src/` (`oauth/grant_types/mod.rs` → `oauth::grant_types`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every module path named by `crate::…`, `super::…` or `self::…` in `source` (outside comments
/// and test code), resolved against `own`, the using module.
fn used_paths(own: &[String], source: &str) -> Vec<Vec<String>> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut used = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < line.len() {
            let starts_path = i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':');
            let rest = &line[i..];
            let base: Option<(Vec<String>, &str)> = if !starts_path {
                None
            } else if let Some(r) = rest.strip_prefix("crate::") {
                Some((Vec::new(), r))
            } else if rest.starts_with("super::") {
                let mut base = own.to_vec();
                let mut r = rest;
                while let Some(next) = r.strip_prefix("super::") {
                    base.pop();
                    r = next;
                }
                Some((base, r))
            } else {
                rest.strip_prefix("self::").map(|r| (own.to_vec(), r))
            };
            if let Some((mut path, r)) = base {
                let mut segments = r.split("::");
                for segment in segments.by_ref() {
                    let name: String = segment
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if name.is_empty() || name.len() != segment.len() {
                        if !name.is_empty() {
                            path.push(name);
                        }
                        break;
                    }
                    path.push(name);
                }
                used.push(path);
            }
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    used
}

/// Inside one area (`oauth`, `routes`, …) no two modules use each other, directly or round a
/// longer loop (issue 10, item 4). A module may use its ancestors (the items its parent
/// declares); the edges counted are those to other modules.
#[test]
fn no_two_modules_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<Vec<String>> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&src).expect("under src")))
        .collect();
    let known: BTreeSet<Vec<String>> = modules.iter().cloned().collect();
    // Each used path → the longest known module it names.
    let mut edges = Edges::new();
    for (file, own) in files.iter().zip(&modules) {
        let source = std::fs::read_to_string(file).expect("readable");
        for mut path in used_paths(own, &source) {
            while !path.is_empty() && !known.contains(&path) {
                path.pop();
            }
            let is_ancestor = own.starts_with(&path);
            if path.is_empty() || is_ancestor || path.starts_with(own) {
                continue;
            }
            edges.entry(own.clone()).or_default().insert(path);
        }
    }
    assert!(
        edges
            .get(&vec!["oauth".to_owned(), "token".to_owned()])
            .is_some_and(|used| used.contains(&vec!["oauth".to_owned(), "grant_types".to_owned()])),
        "the checker sees the token endpoint use its grant types"
    );
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "modules that use each other:\n{}",
        cycles.join("\n")
    );
}

type Edges = std::collections::BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// Every module of `edges` that reaches itself, with the way round.
fn cycles(edges: &Edges) -> Vec<String> {
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.join("::")])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    cycles.push(format!("{} → {}", trail.join(" → "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut trail = trail.clone();
                    trail.push(next.join("::"));
                    stack.push((next.clone(), trail));
                }
            }
        }
    }
    cycles
}

#[test]
fn the_cycle_checker_sees_a_loop() {
    let path = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
    let mut edges = Edges::new();
    edges
        .entry(path("oauth::token"))
        .or_default()
        .insert(path("oauth::grant_types"));
    edges
        .entry(path("oauth::grant_types"))
        .or_default()
        .insert(path("oauth::mint"));
    assert!(cycles(&edges).is_empty());
    edges
        .entry(path("oauth::mint"))
        .or_default()
        .insert(path("oauth::token"));
    assert_eq!(
        cycles(&edges).len(),
        3,
        "each module of the loop reaches itself"
    );
}

#[test]
fn the_cycle_checker_resolves_relative_paths() {
    let own = vec![
        "oauth".to_owned(),
        "grant_types".to_owned(),
        "password".to_owned(),
    ];
    let used = used_paths(
        &own,
        "use super::super::mint::{Issued, Refusal};\nuse super::issue_for_login;\nuse crate::db::users;\n",
    );
    assert_eq!(
        used,
        vec![
            vec!["oauth".to_owned(), "mint".to_owned()],
            vec![
                "oauth".to_owned(),
                "grant_types".to_owned(),
                "issue_for_login".to_owned()
            ],
            vec!["db".to_owned(), "users".to_owned()],
        ]
    );
}

/// The storage rows that carry secrets (a user's password hash and session cut-off, a client's
/// secret hash), and the `db` modules that hand them out.
const SECRET_ROWS: &[&str] = &["UserRow", "ClientRow"];
const SECRET_ROW_MODULES: &[&str] = &["users", "clients"];

/// Where `source` names a row of [`SECRET_ROWS`] or a module of [`SECRET_ROW_MODULES`] under
/// `db` (`db::users::…`, `db::{users, …}`), outside comments.
fn secret_row_uses(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for row in SECRET_ROWS {
        for (i, _) in code.match_indices(row) {
            let before = code[..i].chars().next_back();
            let after = code[i + row.len()..].chars().next();
            if !before.is_some_and(ident) && !after.is_some_and(ident) {
                found.push((*row).to_owned());
            }
        }
    }
    for (i, _) in code.match_indices("db::") {
        if code[..i].chars().next_back().is_some_and(ident) {
            continue;
        }
        let rest = code[i + "db::".len()..].trim_start();
        // The items the path goes on to: one name, or each of a `{…}` group's.
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0_usize;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => return true,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        false
                    })
                    .map_or(group.len(), |(end, _)| end);
                let group = &group[..end];
                let mut items = Vec::new();
                let mut depth = 0_usize;
                let mut start = 0;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth = depth.saturating_sub(1),
                        ',' if depth == 0 => {
                            items.push(group[start..j].trim());
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                items.push(group[start..].trim());
                items
            }
            None => vec![rest],
        };
        for item in items {
            let name: String = item.chars().take_while(|&c| ident(c)).collect();
            if SECRET_ROW_MODULES.contains(&name.as_str()) {
                found.push(format!("db::{name}"));
            }
        }
    }
    found
}

/// The web layer sees the services' views of users and clients (`accounts::Account`,
/// `clients::Client`), never the stored rows, which carry the password hash, the session
/// cut-off and the client secret's hash (`docs/architecture.md`, *Layers*).
#[test]
fn routes_never_name_a_row_that_carries_secrets() {
    let routes = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut files = Vec::new();
    rust_files(&routes, &mut files);
    assert!(!files.is_empty(), "src/routes has files");
    let mut problems = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("readable");
        for used in secret_row_uses(&source) {
            problems.push(format!(
                "{} names {used}",
                file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap_or(file)
                    .display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "routes reach into rows with secrets (use accounts::Account, clients::Client):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_row_checker_sees_rows_and_their_modules() {
    for source in [
        "use crate::db::users::UserRow;",
        "fn f(u: &UserRow) {}",
        "let c: Option<ClientRow> = None;",
        "crate::db::users::find(conn, id)",
        "use crate::db::{self, users};",
        "use crate::db::{\n    tokens::TokenFilter,\n    clients::{self, ClientFilter},\n};",
        "db:: users::list(conn)",
    ] {
        assert!(!secret_row_uses(source).is_empty(), "{source}");
    }
    for source in [
        "use crate::accounts::{Account, UserFilter};",
        "use crate::db::{DbError, user_sessions::SessionRow};",
        "use crate::db::tokens::TokenFilter;",
        "// a comment about crate::db::users::UserRow",
        "let rows = UserRows::default(); let users = db_users::x();",
        "use crate::clients::{Client, Clients};",
    ] {
        assert_eq!(secret_row_uses(source), Vec::<String>::new(), "{source}");
    }
}
