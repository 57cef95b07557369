// Command descset writes the FileDescriptorSet of grpc-go's interop protos (grpc/testing/test.proto and its
// imports, as compiled into google.golang.org/grpc/interop/grpc_testing) to stdout, with each file renamed from
// grpc/testing/ to the directory given by -dir, so that protoc (grpcio-tools, --descriptor_set_in) generates
// Python modules that do not collide with grpcio's own `grpc` package. The proto packages (grpc.testing) and so
// the service and method names stay as they are: the test service is the one grpc-go's interop client calls.
package main

import (
	"flag"
	"os"
	"strings"

	_ "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	dir := flag.String("dir", "grpc_testing_pb", "directory the grpc/testing/ files are renamed into")
	flag.Parse()
	rename := func(path string) string {
		if rest, ok := strings.CutPrefix(path, "grpc/testing/"); ok {
			return *dir + "/" + rest
		}
		return path
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		file := protodesc.ToFileDescriptorProto(fd)
		file.Name = proto.String(rename(file.GetName()))
		for i, dep := range file.Dependency {
			file.Dependency[i] = rename(dep)
		}
		set.File = append(set.File, file)
	}
	fd, err := protoregistry.GlobalFiles.FindFileByPath("grpc/testing/test.proto")
	if err != nil {
		panic(err)
	}
	add(fd)
	out, err := proto.Marshal(set)
	if err != nil {
		panic(err)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		panic(err)
	}
}
