// Placeholder until the helper is written; exits OCF_ERR_UNIMPLEMENTED.
int main() { return 3; }
