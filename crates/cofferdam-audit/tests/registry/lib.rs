//! Empty: this crate exists only so that cargo resolves its dependencies.
