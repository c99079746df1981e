//! Cost of one client assertion per algorithm (`Signer::sign`: claims, jti, signature, encoding),
//! and, for contrast, of parsing an RSA key: the reason the signer parses its key only once.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ibkr_oauth::{Algorithm, PrivateKey, Signer};

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign");
    for alg in Algorithm::ALL {
        let key = PrivateKey::generate(alg).expect("key generation");
        let signer = Signer::builder("bench-client", "main", key)
            .algorithm(alg)
            .build()
            .expect("signer");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| black_box(signer.sign().expect("sign")))
        });
    }
    group.finish();

    let pem = PrivateKey::generate(Algorithm::RS256)
        .expect("key generation")
        .to_pkcs8_pem()
        .expect("export");
    c.bench_function("parse/rsa2048_pkcs8", |b| {
        b.iter(|| black_box(PrivateKey::from_pem(black_box(&pem)).expect("parse")))
    });
}

criterion_group!(benches, sign);
criterion_main!(benches);
