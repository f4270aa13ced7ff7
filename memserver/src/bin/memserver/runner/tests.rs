//! Runner tests with the test service over socketpairs.
