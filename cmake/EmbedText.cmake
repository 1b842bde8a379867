# Writes the file IN as a C++ raw string literal (with its parentheses) to OUT,
# for `static const char x[] = #include "OUT";`. Split into chunks because some
# compilers limit the length of one string literal.
file(READ "${IN}" content)
string(LENGTH "${content}" len)
set(out "")
set(pos 0)
while(pos LESS len)
  string(SUBSTRING "${content}" ${pos} 8000 chunk)
  string(APPEND out "R\"hagembed(${chunk})hagembed\"\n")
  math(EXPR pos "${pos} + 8000")
endwhile()
file(WRITE "${OUT}" "${out}")
