#include "gang/commands.hpp"

int main(int argc, char** argv) { return gang::run_main(argc, argv); }
