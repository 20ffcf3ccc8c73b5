# SPDX-License-Identifier: Apache-2.0
# The symbols libalphatop_agent.so exports must be exactly the agent API (the functions
# agent/include/alphatop/agent.h declares AT_EXPORT) plus what the Python binding calls
# (the names declared in python/alphatop/_lib.py). Anything else is an internal symbol leaking.
# cmake -DNM=nm -DLIB=libalphatop_agent.so -DHEADER=agent.h -DBINDING=_lib.py -P exports.cmake
foreach(var NM LIB HEADER BINDING)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "exports.cmake: -D${var}=... is required")
    endif()
endforeach()

# The agent API: every function its header marks AT_EXPORT.
file(READ ${HEADER} header)
string(REGEX MATCHALL "AT_EXPORT[^;(]*[ *](at_[a-z0-9_]+)\\(" decls "${header}")
set(expected)
foreach(d ${decls})
    string(REGEX REPLACE ".*[ *](at_[a-z0-9_]+)\\($" "\\1" name "${d}")
    list(APPEND expected ${name})
endforeach()
list(LENGTH expected n_api)
if(n_api LESS 10)
    message(FATAL_ERROR "found only ${n_api} AT_EXPORT functions in ${HEADER}: parse error?")
endif()

# The binding's ctypes declarations: the keys "at_...": of _declare's table.
file(READ ${BINDING} binding)
string(REGEX MATCHALL "\"at_[a-z0-9_]+\":" calls "${binding}")
foreach(c ${calls})
    string(REGEX REPLACE "\"(at_[a-z0-9_]+)\":" "\\1" name "${c}")
    list(APPEND expected ${name})
endforeach()
list(REMOVE_DUPLICATES expected)
list(SORT expected)

execute_process(COMMAND ${NM} -D --defined-only ${LIB} OUTPUT_VARIABLE nm_out
                RESULT_VARIABLE rc ERROR_VARIABLE nm_err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} -D --defined-only ${LIB} failed: ${nm_err}")
endif()
string(REPLACE "\n" ";" lines "${nm_out}")
set(exported)
foreach(line ${lines})
    # "ADDRESS TYPE NAME"; the sanitizer runtime's own hooks (an ASan build) are not ours.
    if(line MATCHES "^[0-9a-f]* [A-Za-z] ([^ ]+)$")
        set(name ${CMAKE_MATCH_1})
        if(NOT name MATCHES "^(__asan|___asan|__odr_asan|__ubsan|__sanitizer|__lsan)")
            list(APPEND exported ${name})
        endif()
    endif()
endforeach()
list(SORT exported)

set(extra ${exported})
list(REMOVE_ITEM extra ${expected})
set(missing ${expected})
list(REMOVE_ITEM missing ${exported})
list(LENGTH exported n_exported)
if(extra OR missing)
    string(REPLACE ";" " " extra "${extra}")
    string(REPLACE ";" " " missing "${missing}")
    message(FATAL_ERROR "${LIB} exports the wrong symbols.\n"
            "  exported but not agent API or called by the binding: ${extra}\n"
            "  expected but not exported: ${missing}")
endif()
message(STATUS "${n_exported} symbols exported, exactly the agent API and the binding's calls")
