# helper-man.cmake: a helper's --help -> its man page, <helper>(8).
#
# Copyright (C) 2026 the resource-agents-messaging authors
# SPDX-License-Identifier: GPL-2.0-or-later
#
# cmake -DHELPER=path -DVERSION=x.y.z -DHELP2MAN=path -DOUTPUT=file.8
#       -DWORK_DIR=dir "-DSEE_ALSO=page(7);..." -P helper-man.cmake
#
# help2man turns the top-level --help into the page (NAME from its first
# line, SYNOPSIS, OPTIONS, the subcommand list and the exit codes). Each
# subcommand's own --help is added as a SUBCOMMANDS section, so every option
# of every subcommand is documented from the binary itself and the page
# cannot drift from the code. The exit-code text a subcommand repeats from
# the top-level help is left out there.

cmake_minimum_required(VERSION 3.25)

foreach(var HELPER VERSION HELP2MAN OUTPUT WORK_DIR)
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
  string(REGEX REPLACE "\n$" "" text "${text}")
  # Keep list-special characters out of the way before splitting on lines
  # (list operations do not preserve escaped semicolons).
  string(REPLACE ";" "<msg-sc>" text "${text}")
  string(REPLACE "[" "<msg-lb>" text "${text}")
  string(REPLACE "]" "<msg-rb>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# One line back to its own text.
function(help_line_text out_var line)
  string(REPLACE "<msg-sc>" ";" line "${line}")
  string(REPLACE "<msg-lb>" "[" line "${line}")
  string(REPLACE "<msg-rb>" "]" line "${line}")
  set(${out_var} "${line}" PARENT_SCOPE)
endfunction()

# Roff for one literal (no-fill) line: backslashes printable, hyphens as
# minus signs (these are options to type), no line read as a request.
function(roff_literal out_var line)
  help_line_text(line "${line}")
  string(REPLACE "\\" "\\e" line "${line}")
  string(REPLACE "-" "\\-" line "${line}")
  if(line MATCHES "^[.']")
    set(line "\\&${line}")
  endif()
  set(${out_var} "${line}" PARENT_SCOPE)
endfunction()

helper_help_lines(top --help)
list(GET top 0 description)
help_line_text(description "${description}")
string(REGEX REPLACE "[.]$" "" description "${description}")

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

set(include "")
if(subcommands)
  string(APPEND include "[SUBCOMMANDS]\n")
  foreach(sub IN LISTS subcommands)
    helper_help_lines(sub_lines ${sub} --help)
    # Drop the tail the subcommand shares with the top-level help.
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
    string(APPEND include ".SS \"${helper_name} ${sub}\"\n.nf\n")
    foreach(line IN LISTS sub_lines)
      roff_literal(line "${line}")
      string(APPEND include "${line}\n")
    endforeach()
    string(APPEND include ".fi\n")
  endforeach()
endif()

if(SEE_ALSO)
  string(APPEND include "[SEE ALSO]\n")
  set(sep "")
  foreach(page IN LISTS SEE_ALSO)
    string(REGEX REPLACE "^(.*)[(]([0-9a-z]+)[)]$" ".BR \\1 (\\2)" ref "${page}")
    string(APPEND include "${sep}${ref}")
    set(sep ",\n")
  endforeach()
  string(APPEND include "\n")
endif()

file(MAKE_DIRECTORY "${WORK_DIR}")
set(include_file "${WORK_DIR}/${helper_name}.h2m")
file(WRITE "${include_file}" "${include}")

execute_process(
  COMMAND "${HELP2MAN}" --no-info --section=8
          "--name=${description}"
          "--version-string=${VERSION}"
          "--manual=resource-agents-messaging"
          "--include=${include_file}"
          "--output=${OUTPUT}"
          "${HELPER}"
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE "${OUTPUT}")
  message(FATAL_ERROR "help2man ${helper_name} failed (${rc}): ${err}")
endif()
