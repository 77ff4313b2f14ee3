//! The layering of `src/` (issue 10, item 4), checked on the source: a module may use modules
//! of its own layer or of a lower one, never a higher one (`docs/architecture.md`, *Layers*).
//! Reads every `crate::…` path outside comments and `#[cfg(test)]` code; a new top-level
//! module must be given a layer here.

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules of `src/` by layer, lowest first.
const LAYERS: &[&[&str]] = &[
    // Pure values and helpers: no I/O, no configuration.
    &["domain", "secret"],
    // Storage, and the error vocabulary over it.
    &["db", "error"],
    // Settings and logging.
    &["config", "telemetry"],
    // Cross-cutting services every domain service records to or counts with.
    &["audit", "limits", "mail"],
    // Domain services.
    &["accounts", "clients", "groups", "scheduler"],
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
