/* placeholder: replaced by the daemon's start-up code */
int main(void);
int main(void) { return 0; }
