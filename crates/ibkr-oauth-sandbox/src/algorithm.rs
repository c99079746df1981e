//! The JWS algorithms a registered key can be bound to: the SDK's [`Algorithm`], mapped to
//! jsonwebtoken's for verification.

use crate::Algorithm;

/// jsonwebtoken's algorithm for `alg`; an error for one added to the SDK later that the sandbox
/// does not verify (registration refuses such a key before it gets here).
pub(crate) fn jwt_algorithm(alg: Algorithm) -> Result<jsonwebtoken::Algorithm, String> {
    match alg {
        Algorithm::RS256 => Ok(jsonwebtoken::Algorithm::RS256),
        Algorithm::PS256 => Ok(jsonwebtoken::Algorithm::PS256),
        Algorithm::ES256 => Ok(jsonwebtoken::Algorithm::ES256),
        Algorithm::EdDSA => Ok(jsonwebtoken::Algorithm::EdDSA),
        other => Err(format!("the sandbox cannot verify {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_algorithm_to_its_jose_name() {
        for alg in Algorithm::ALL {
            let jwt = jwt_algorithm(alg).map(|jwt| format!("{jwt:?}"));
            assert_eq!(jwt.as_deref(), Ok(alg.as_str()));
        }
    }
}
