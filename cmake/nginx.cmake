# Locates nginx headers configured exactly like the nginx the module loads into.
#
# A dynamic module only loads when its binary signature (NGX_MODULE_SIGNATURE,
# derived from the configure-time feature set) matches the running nginx. So
# by default we copy Debian's nginx-dev source tree into the build tree and
# run its ./configure with the flags Debian recorded in conf_flags. Configuring
# only writes objs/ngx_auto_*.h; nothing of nginx itself is compiled.
#
# NGINX_BUILD_DIR: use an nginx source tree you configured yourself instead
# (any version >= 1.22, e.g. trixie's nginx-dev for 1.26).

set(NGINX_BUILD_DIR "" CACHE PATH "Configured nginx source tree (holding objs/ngx_auto_config.h); empty: configure nginx-dev into the build tree")
set(NGINX_DEV_SOURCE "/usr/share/nginx/src" CACHE PATH "Debian nginx-dev source tree")

if(NOT NGINX_BUILD_DIR)
  set(_ngx_dir "${CMAKE_BINARY_DIR}/nginx")
  if(NOT EXISTS "${_ngx_dir}/objs/ngx_auto_config.h")
    if(NOT EXISTS "${NGINX_DEV_SOURCE}/conf_flags")
      message(FATAL_ERROR "nginx-dev not found at ${NGINX_DEV_SOURCE}: apt-get install nginx-dev, or set NGINX_BUILD_DIR")
    endif()
    message(STATUS "Configuring nginx headers from ${NGINX_DEV_SOURCE}")
    file(REMOVE_RECURSE "${_ngx_dir}")
    file(COPY "${NGINX_DEV_SOURCE}/" DESTINATION "${_ngx_dir}")
    execute_process(
      COMMAND bash -c "source ./conf_flags && ./configure \"\${NGX_CONF_FLAGS[@]}\""
      WORKING_DIRECTORY "${_ngx_dir}"
      RESULT_VARIABLE _ngx_rc
      OUTPUT_FILE "${_ngx_dir}/configure.log"
      ERROR_FILE "${_ngx_dir}/configure.log")
    if(NOT _ngx_rc EQUAL 0)
      message(FATAL_ERROR "nginx ./configure failed; see ${_ngx_dir}/configure.log and ${_ngx_dir}/objs/autoconf.err")
    endif()
  endif()
  set(_ngx_root "${_ngx_dir}")
else()
  set(_ngx_root "${NGINX_BUILD_DIR}")
  if(NOT EXISTS "${_ngx_root}/objs/ngx_auto_config.h")
    message(FATAL_ERROR "NGINX_BUILD_DIR=${_ngx_root} holds no objs/ngx_auto_config.h: run its ./configure first")
  endif()
endif()

set(NGINX_INCLUDE_DIRS
  "${_ngx_root}/src/core"
  "${_ngx_root}/src/event"
  "${_ngx_root}/src/event/modules"
  "${_ngx_root}/src/os/unix"
  "${_ngx_root}/src/http"
  "${_ngx_root}/src/http/modules"
  "${_ngx_root}/src/http/v2"
  "${_ngx_root}/objs")
# nginx built with HTTP/3 (Debian 13's is) includes these from its core headers.
foreach(_d src/event/quic src/http/v3)
  if(EXISTS "${_ngx_root}/${_d}")
    list(APPEND NGINX_INCLUDE_DIRS "${_ngx_root}/${_d}")
  endif()
endforeach()
file(STRINGS "${_ngx_root}/src/core/nginx.h" _ngx_ver REGEX "define NGINX_VERSION ")
string(REGEX REPLACE ".*\"(.*)\".*" "\\1" NGINX_VERSION "${_ngx_ver}")
message(STATUS "Building against nginx ${NGINX_VERSION} headers in ${_ngx_root}")
