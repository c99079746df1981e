pub mod problem_detail_response;
pub use self::problem_detail_response::ProblemDetailResponse;
pub mod token_response;
pub use self::token_response::TokenResponse;
