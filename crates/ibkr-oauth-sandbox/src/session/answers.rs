//! The session endpoints' answers, in the shapes of IBKR's published spec (field names as IBKR
//! spells them, `collission` included) with the values of its examples where the sandbox has
//! nothing of its own to say.

use serde_json::{Value, json};

use super::state::{Status, View};

/// IBKR's example `MAC` and `serverInfo` (internal fields clients only display).
const MAC: &str = "98:F2:B3:23:BF:A0";
fn server_info() -> Value {
    json!({"serverName": "ibkr-oauth-sandbox", "serverVersion": env!("CARGO_PKG_VERSION")})
}

/// FNV-1a: a stable number from a username (user id, account id), the same in every run.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The user id IBKR would give `username` (an int32 in the spec).
fn user_id(username: &str) -> u64 {
    100_000_000 + stable_hash(username) % 900_000_000
}

/// The one (paper) account of `username`: `DU` and seven digits, stable across runs.
pub(crate) fn account_id(username: &str) -> String {
    format!("DU{}", 1_000_000 + stable_hash(username) % 9_000_000)
}

/// `GET /v1/api/sso/validate`.
pub(crate) fn validate_answer(view: &View) -> Value {
    json!({
        "USER_ID": user_id(&view.username),
        "USER_NAME": view.username,
        "RESULT": true,
        "AUTH_TIME": view.auth_time_ms,
        "SF_ENABLED": false,
        "IS_FREE_TRIAL": false,
        "CREDENTIAL": view.username,
        "IP": view.ip.map(|ip| ip.to_string()),
        "EXPIRES": view.expires_ms,
        "QUALIFIED_FOR_MOBILE_AUTH": null,
        "LANDING_APP": "UNIVERSAL",
        "IS_MASTER": false,
        "lastAccessed": view.last_accessed_ms,
        "LOGIN_TYPE": 2,
        "PAPER_USER_NAME": view.username,
        "features": {
            "env": "PROD", "wlms": true, "realtime": true, "bond": true,
            "optionChains": true, "calendar": true, "newMf": true
        },
        "region": "NJ",
    })
}

/// `brokerageSessionStatus`: the answer of `ssodh/init`, of `auth/status` (with `fail` and
/// `hardware_info`, `for_status`) and `iserver.authStatus` in tickle's.
pub(crate) fn auth_status_answer(status: Status, for_status: bool) -> Value {
    let mut answer = json!({
        "authenticated": status.authenticated,
        "established": status.authenticated,
        "competing": status.competing,
        "connected": status.connected,
        "message": "",
        "MAC": MAC,
        "serverInfo": server_info(),
    });
    if for_status {
        answer["hardware_info"] = json!("00000000|00:00:00:00:00:00");
        answer["fail"] = json!("");
    }
    answer
}

/// `successfulTickleResponse`.
pub(crate) fn tickle_answer(view: &View, status: Status) -> Value {
    let mut answer = json!({
        "session": view.name,
        "ssoExpires": view.expires_ms,
        "collission": false,
        "userId": user_id(&view.username),
        "iserver": {"authStatus": auth_status_answer(status, false)},
    });
    if !status.authenticated {
        // As IBKR's example: the historical data server reports the missing bridge too.
        answer["hmds"] = json!({"error": "no bridge"});
    }
    answer
}

/// `GET /v1/api/portfolio/accounts`: IBKR's `AccountExample`, for the user's account.
pub(crate) fn accounts_answer(username: &str) -> Value {
    let id = account_id(username);
    json!([{
        "PrepaidCrypto-Z": false,
        "PrepaidCrypto-P": false,
        "accountAlias": null,
        "accountId": id,
        "accountStatus": 1_590_724_800_000_i64,
        "accountTitle": username,
        "accountVan": id,
        "acctCustType": "INDIVIDUAL",
        "brokerageAccess": true,
        "businessType": "IB_SALES",
        "category": "",
        "clearingStatus": "O",
        "covestor": false,
        "currency": "USD",
        "desc": id,
        "displayName": username,
        "faclient": false,
        "ibEntity": "IBLLC-US",
        "id": id,
        "noClientTrading": false,
        "parent": {
            "mmc": [], "accountId": "", "isMParent": false, "isMChild": false,
            "isMultiplex": false
        },
        "trackVirtualFXPortfolio": true,
        "tradingType": "STKNOPT",
        "type": "DEMO",
    }])
}

/// `GET /v1/api/iserver/accounts`: `userAccountsResponse` as in IBKR's example.
pub(crate) fn iserver_accounts_answer(username: &str, session_name: &str) -> Value {
    let id = account_id(username);
    json!({
        "accounts": [id],
        "acctProps": {
            id.as_str(): {
                "hasChildAccounts": false, "supportsCashQty": true, "liteUnderPro": false,
                "noFxConv": false, "supportsFractions": true, "allowCustomerTime": true,
                "autoFx": false
            }
        },
        "aliases": {"All": "All", id.as_str(): id},
        "allowFeatures": {
            "showGFIS": true, "showEUCostReport": false, "allowEventContract": true,
            "allowFXConv": true, "allowFinancialLens": true, "allowMTA": false,
            "allowTypeAhead": true, "allowEventTrading": true, "snapshotRefreshTimeout": 30,
            "liteUser": false, "showWebNews": true, "research": true, "debugPnl": true,
            "showTaxOpt": true, "showImpactDashboard": true, "allowDynAccount": false,
            "allowCrypto": false, "allowFA": false, "allowLiteUnderPro": false,
            "allowedAssetTypes": "STK,CFD,OPT,FOP,WAR,FUT,BAG,PDC,CASH,IND,BOND,BILL,FUND,SLB,News,CMDTY,IOPT,ICU,ICS,PHYSS,CRYPTO",
            "restrictTradeSubscription": false, "showUkUserLabels": false, "sideBySide": true
        },
        "chartPeriods": {"STK": ["*"], "OPT": ["2h", "1d", "2d", "1w", "1m"], "FUT": ["*"]},
        "groups": ["All"],
        "profiles": [],
        "selectedAccount": id,
        "serverInfo": server_info(),
        "sessionId": session_name,
        "isFT": false,
        "isPaper": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_in_range() {
        assert_eq!(account_id("alice"), account_id("alice"));
        assert_ne!(account_id("alice"), account_id("bob"));
        let digits = &account_id("alice")[2..];
        assert_eq!(digits.len(), 7);
        assert!(user_id("alice") < i32::MAX as u64);
    }
}
