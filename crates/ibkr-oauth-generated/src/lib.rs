#![allow(unused_imports)]
#![allow(clippy::too_many_arguments)]
// ibkr-oauth: the one declared place for lints of generated code that `-D warnings` would
// otherwise fail on (the generator's templates write `return x;` at the end of functions).
#![allow(clippy::needless_return)]

extern crate reqwest;
extern crate serde;
extern crate serde_json;
extern crate url;

pub mod apis;
pub mod models;
