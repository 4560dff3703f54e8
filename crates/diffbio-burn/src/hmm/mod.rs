//! Hidden Markov model (issue 3).
