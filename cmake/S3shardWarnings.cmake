# s3shard_warnings(target): our warning set, errors when S3SHARD_WERROR, and the
# sanitizers chosen by S3SHARD_SANITIZER.
function(s3shard_warnings tgt)
  target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
    -Wvla -Wformat=2 -Wno-format-nonliteral -Wmissing-prototypes)
  if(S3SHARD_WERROR)
    target_compile_options(${tgt} PRIVATE -Werror)
  endif()
endfunction()

if(S3SHARD_SANITIZER)
  add_compile_options(-fsanitize=${S3SHARD_SANITIZER} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${S3SHARD_SANITIZER})
endif()
