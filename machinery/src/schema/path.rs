//! Lazily rendered paths.

use std::fmt::Write as _;

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    /// A declared property.
    Prop(&'a str),
    /// A key matched by `additionalProperties`.
    Key(&'a str),
    Index(usize),
}

/// A path as a linked list on the stack; rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(super) struct Path<'a> {
    seg: Seg<'a>,
    parent: Option<&'a Path<'a>>,
}

impl<'a> Path<'a> {
    pub(super) const ROOT: Path<'static> = Path {
        seg: Seg::Root,
        parent: None,
    };

    pub(super) fn prop<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            seg: Seg::Prop(key),
            parent: Some(self),
        }
    }

    pub(super) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            seg: Seg::Key(key),
            parent: Some(self),
        }
    }

    pub(super) fn index(&self, i: usize) -> Path<'_> {
        Path {
            seg: Seg::Index(i),
            parent: Some(self),
        }
    }

    /// Renders the path. The OpenAPI validator joins map keys with dots
    /// (`spec.labels.app`); `field.Path` uses brackets (`spec.labels[app]`).
    pub(super) fn render(&self, brackets_for_keys: bool) -> String {
        let mut segs: Vec<Seg<'_>> = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match *seg {
                Seg::Root => {}
                Seg::Key(k) if brackets_for_keys => {
                    out.push('[');
                    out.push_str(k);
                    out.push(']');
                }
                Seg::Prop(k) | Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

pub(super) fn join_path(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else if rel.is_empty() {
        base.to_string()
    } else if rel.starts_with('[') {
        format!("{base}{rel}")
    } else {
        format!("{base}.{rel}")
    }
}
