# helper-man.cmake: a helper's --help -> its man page, <helper>(8).
#
# Copyright (C) 2026 the resource-agents-messaging authors
# SPDX-License-Identifier: GPL-2.0-or-later
#
# cmake -DHELPER=path -DVERSION=x.y.z -DOUTPUT=file.8
#       "-DSEE_ALSO=page(7);..." -P helper-man.cmake
#
# NAME comes from the first line of --help, SYNOPSIS from its "Usage:"
# line, DESCRIPTION is the text above "Usage:" and then everything below it
# exactly as --help lays it out (options, subcommands, exit codes, examples
# of configuration files). Each subcommand's own --help follows in a
# SUBCOMMANDS section, without the tail it repeats from the top-level help.
# The page is therefore the binary's own text and cannot drift from it.
# (help2man was tried first: it re-fills indented blocks such as a
# configuration example into one paragraph.)

cmake_minimum_required(VERSION 3.25)

foreach(var HELPER VERSION OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "helper-man.cmake: -D${var}= is required")
  endif()
endforeach()
get_filename_component(helper_name "${HELPER}" NAME)

# Runs the helper with ARGN; its stdout goes to OUT_VAR as a list of lines.
function(helper_help_lines out_var)
  execute_process(COMMAND "${HELPER}" ${ARGN}
                  OUTPUT_VARIABLE text ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${helper_name} ${ARGN} exited with ${rc}: ${err}")
  endif()
  string(REGEX REPLACE "\n+$" "" text "${text}")
  # Keep list-special characters out of the way before splitting on lines
  # (list operations do not preserve escaped semicolons).
  string(REPLACE ";" "<msg-sc>" text "${text}")
  string(REPLACE "[" "<msg-lb>" text "${text}")
  string(REPLACE "]" "<msg-rb>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# One line as roff text: backslashes printable, no line read as a request.
# With HYPHENS, "-" becomes a minus sign (options to type, in literal text).
function(roff_line out_var line)
  string(REPLACE "<msg-sc>" ";" line "${line}")
  string(REPLACE "<msg-lb>" "[" line "${line}")
  string(REPLACE "<msg-rb>" "]" line "${line}")
  string(REPLACE "\\" "\\e" line "${line}")
  if("HYPHENS" IN_LIST ARGN)
    string(REPLACE "-" "\\-" line "${line}")
  endif()
  if(line MATCHES "^[.']")
    set(line "\\&${line}")
  endif()
  set(${out_var} "${line}" PARENT_SCOPE)
endfunction()

# Appends LINES (a list) to the page as a no-fill block.
function(append_literal lines)
  set(block ".nf\n")
  foreach(line IN LISTS lines)
    roff_line(line "${line}" HYPHENS)
    string(APPEND block "${line}\n")
  endforeach()
  string(APPEND block ".fi\n")
  set(page "${page}${block}" PARENT_SCOPE)
endfunction()

helper_help_lines(top --help)

# The text above "Usage:", and the usage line itself.
set(intro "")
set(usage "")
set(rest "")
set(state intro)
foreach(line IN LISTS top)
  if(state STREQUAL "intro" AND line MATCHES "^Usage: *[^ ]+ *(.*)$")
    set(usage "${CMAKE_MATCH_1}")
    set(state rest)
  elseif(state STREQUAL "intro")
    list(APPEND intro "${line}")
  else()
    list(APPEND rest "${line}")
  endif()
endforeach()
if(NOT intro OR state STREQUAL "intro")
  message(FATAL_ERROR "${helper_name} --help: expected a description and a \"Usage:\" line")
endif()
# Blank lines at the start of the literal part would only add space.
while(rest)
  list(GET rest 0 first)
  if(NOT first STREQUAL "")
    break()
  endif()
  list(REMOVE_AT rest 0)
endwhile()

list(GET intro 0 name_line)
roff_line(name_line "${name_line}")
string(REGEX REPLACE "[.]$" "" name_line "${name_line}")
string(TOUPPER "${helper_name}" title)

set(page ".\\\" Generated from ${helper_name} --help by helper-man.cmake; do not edit.\n")
string(APPEND page ".TH \"${title}\" \"8\" \"\" \"resource-agents-messaging ${VERSION}\" \"resource-agents-messaging\"\n")
string(APPEND page ".SH NAME\n${helper_name} \\- ${name_line}\n")
roff_line(usage "${usage}" HYPHENS)
string(APPEND page ".SH SYNOPSIS\n.B ${helper_name}\n${usage}\n")
string(APPEND page ".SH DESCRIPTION\n")
foreach(line IN LISTS intro)
  roff_line(line "${line}")
  if(line STREQUAL "")
    set(line ".PP")
  endif()
  string(APPEND page "${line}\n")
endforeach()
string(APPEND page ".PP\n")
append_literal("${rest}")

# Subcommand names: the first word of each entry under "Subcommands:".
set(subcommands "")
set(in_list FALSE)
foreach(line IN LISTS top)
  if(line STREQUAL "Subcommands:")
    set(in_list TRUE)
  elseif(in_list AND line MATCHES "^  ([a-z0-9][a-z0-9-]*)( |$)")
    list(APPEND subcommands "${CMAKE_MATCH_1}")
  elseif(in_list AND NOT line MATCHES "^ ")
    set(in_list FALSE)
  endif()
endforeach()

if(subcommands)
  string(APPEND page ".SH SUBCOMMANDS\n")
  foreach(sub IN LISTS subcommands)
    helper_help_lines(sub_lines ${sub} --help)
    # Drop the tail the subcommand shares with the top-level help ...
    list(LENGTH top top_n)
    list(LENGTH sub_lines sub_n)
    while(top_n GREATER 0 AND sub_n GREATER 0)
      math(EXPR ti "${top_n} - 1")
      math(EXPR si "${sub_n} - 1")
      list(GET top ${ti} tl)
      list(GET sub_lines ${si} sl)
      if(NOT tl STREQUAL sl)
        break()
      endif()
      list(REMOVE_AT sub_lines ${si})
      set(top_n ${ti})
      set(sub_n ${si})
    endwhile()
    # ... and any blank lines that leaves at the end.
    while(sub_n GREATER 0)
      math(EXPR si "${sub_n} - 1")
      list(GET sub_lines ${si} sl)
      if(NOT sl STREQUAL "")
        break()
      endif()
      list(REMOVE_AT sub_lines ${si})
      set(sub_n ${si})
    endwhile()
    string(APPEND page ".SS \"${helper_name} ${sub}\"\n")
    append_literal("${sub_lines}")
  endforeach()
endif()

if(SEE_ALSO)
  string(APPEND page ".SH SEE ALSO\n")
  set(sep "")
  foreach(ref IN LISTS SEE_ALSO)
    string(REGEX REPLACE "^(.*)[(]([0-9a-z]+)[)]$" ".BR \\1 (\\2)" ref "${ref}")
    string(APPEND page "${sep}${ref}")
    set(sep ",\n")
  endforeach()
  string(APPEND page "\n")
endif()

file(WRITE "${OUTPUT}" "${page}")
